"""Jurisdictions through the real HTTP API."""

from __future__ import annotations

from typing import Any

from tests.conftest import bearer, make_token

CITY = {"code": "sh", "kind": "city", "name": "Shanghai", "centre": {"lat": 31.23, "lon": 121.47}}


async def create_tree(client: Any, token: str) -> None:
    h = bearer(token)
    for body in (
        CITY,
        {"code": "pd", "parent": "sh", "kind": "district", "name": "Pudong"},
        {"code": "hp", "parent": "sh", "kind": "district", "name": "Huangpu"},
        {"code": "pd-lujiazui", "parent": "pd", "kind": "street", "name": "Lujiazui"},
    ):
        r = await client.post("/v1/jurisdictions", json=body, headers=h)
        assert r.status == 201, await r.text()


async def test_admin_builds_a_tree_and_lists_it_with_paths(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    r = await client.get("/v1/jurisdictions", params={"under": "pd"}, headers=bearer(admin_token))
    assert r.status == 200
    body = await r.json()
    assert [j["code"] for j in body["items"]] == ["pd", "pd-lujiazui"]
    assert body["items"][1]["path"] == "/sh/pd/pd-lujiazui"


async def test_cursor_pagination_walks_every_item_once(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/v1/jurisdictions", params=params, headers=bearer(admin_token))
        body = await r.json()
        seen += [j["code"] for j in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(["sh", "pd", "hp", "pd-lujiazui"])


async def test_coordinator_sees_only_its_subtree(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await create_tree(client, admin_token)
    coord = await make_token(db_dsn, "coordinator", "pd")
    r = await client.get("/v1/jurisdictions", headers=bearer(coord))
    assert [j["code"] for j in (await r.json())["items"]] == ["pd", "pd-lujiazui"]
    r = await client.get("/v1/jurisdictions/hp", headers=bearer(coord))
    assert r.status == 404
    assert r.content_type == "application/problem+json"


async def test_stale_version_and_if_match_are_refused(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    h = bearer(admin_token)
    r = await client.patch(
        "/v1/jurisdictions/pd", json={"name": "Pudong New Area", "version": 1}, headers=h
    )
    assert r.status == 200 and r.headers["ETag"] == '"2"'
    r = await client.patch("/v1/jurisdictions/pd", json={"name": "Stale", "version": 1}, headers=h)
    assert r.status == 409
    r = await client.patch(
        "/v1/jurisdictions/pd", json={"name": "Stale"}, headers=h | {"If-Match": '"1"'}
    )
    assert r.status == 412
    r = await client.get("/v1/jurisdictions/pd", headers=h)
    assert (await r.json())["name"] == "Pudong New Area"


async def test_bad_inputs_get_problem_json_and_write_nothing(client: Any, admin_token: str) -> None:
    h = bearer(admin_token)
    await client.post("/v1/jurisdictions", json=CITY, headers=h)
    cases = [
        (b"{not json", 422, None),
        (b'{"code": "x1", "kind": "city", "name": 5}', 422, "/name"),
        (b'{"code": "x1", "kind": "city", "name": "X", "colour": "red"}', 422, "/colour"),
        (
            b'{"code": "x1", "kind": "city", "name": "X", "centre": {"lat": 91, "lon": 0}}',
            422,
            "/centre/lat",
        ),
        (b'{"code": "x1", "parent": "nowhere", "kind": "district", "name": "X"}', 422, "/parent"),
        (b'{"code": "sh", "kind": "city", "name": "Dup"}', 409, "/code"),
        (b'{"code": "Bad Code", "kind": "city", "name": "X"}', 422, "/code"),
    ]
    for raw, status, loc in cases:
        r = await client.post(
            "/v1/jurisdictions", data=raw, headers=h | {"Content-Type": "application/json"}
        )
        assert r.status == status, (raw, await r.text())
        assert r.content_type == "application/problem+json"
        body = await r.json()
        assert body["status"] == status
        if loc:
            assert loc in [e["loc"] for e in body["errors"]], body
    r = await client.get("/v1/jurisdictions", headers=h)
    assert [j["code"] for j in (await r.json())["items"]] == ["sh"]


async def test_auth_failures(client: Any, admin_token: str, db_dsn: str) -> None:
    r = await client.get("/v1/jurisdictions")
    assert r.status == 401
    r = await client.get("/v1/jurisdictions", headers=bearer("mst_nonsense"))
    assert r.status == 401
    await create_tree(client, admin_token)
    coord = await make_token(db_dsn, "coordinator", "pd")
    r = await client.post(
        "/v1/jurisdictions",
        json={"code": "pd-x", "parent": "pd", "kind": "street", "name": "X"},
        headers=bearer(coord),
    )
    assert r.status == 403


async def test_oversized_body_is_refused(client: Any, admin_token: str) -> None:
    big = b'{"code": "sh", "kind": "city", "name": "' + b"x" * 2_000_000 + b'"}'
    r = await client.post(
        "/v1/jurisdictions",
        data=big,
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )
    assert r.status == 413
    assert r.content_type == "application/problem+json"
