"""The roster through the real HTTP API: CRUD, filters, scope, PII and bad input."""

from __future__ import annotations

from typing import Any

from tests.api.test_jurisdictions_api import create_tree
from tests.conftest import bearer, make_token

ANN = {
    "id": "ann",
    "kind": "volunteer",
    "name": "Ann Li",
    "jurisdiction": "pd-lujiazui",
    "home": {"lat": 31.24, "lon": 121.5},
    "contacts": {"phone": "+86 138 0000 0001", "email": "ann@example.org", "preferred": ["sms"]},
    "skills": [
        {"name": "first_aid", "level": 3},
        {"name": "driver", "level": 2, "expires_on": "2020-01-31"},
    ],
    "certifications": [{"name": "first_aid", "expires_on": "2099-12-31"}],
    "availability": {
        "timezone": "Asia/Shanghai",
        "weekly": [{"day": 0, "start": "08:00", "end": "18:00"}],
        "exceptions": [
            {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "available": False}
        ],
    },
}
BOB = {
    "id": "bob",
    "kind": "staff",
    "name": "Bob Wang",
    "jurisdiction": "hp",
    "home": {"lat": 31.23, "lon": 121.48},
    "skills": [{"name": "driver", "level": 4}],
    "reserve": True,
}


async def setup(client: Any, admin: str) -> None:
    await create_tree(client, admin)
    for body in (ANN, BOB):
        r = await client.post("/v1/people", json=body, headers=bearer(admin))
        assert r.status == 201, await r.text()


async def people_count(client: Any, admin: str) -> int:
    r = await client.get("/v1/people", headers=bearer(admin))
    return len((await r.json())["items"])


async def test_admin_creates_reads_updates_and_deactivates_a_person(
    client: Any, admin_token: str
) -> None:
    await setup(client, admin_token)
    h = bearer(admin_token)
    r = await client.post(
        "/v1/people",
        json={"kind": "staff", "name": "Gen", "jurisdiction": "pd", "home": {"lat": 1, "lon": 2}},
        headers=h,
    )
    assert r.status == 201
    created = await r.json()
    assert created["id"].startswith("p-") and r.headers["Location"] == f"/v1/people/{created['id']}"
    assert created["max_hours_per_24h"] == 12 and created["active"] is True

    r = await client.get("/v1/people/ann", headers=h)
    assert r.status == 200 and r.headers["ETag"] == '"1"'
    ann = await r.json()
    assert ann["contacts"]["email"] == "ann@example.org" and ann["home"]["lat"] == 31.24
    assert ann["availability"]["exceptions"][0]["available"] is False

    r = await client.patch(
        "/v1/people/ann", json={"name": "Ann Li-Zhang", "reserve": True, "version": 1}, headers=h
    )
    assert r.status == 200, await r.text()
    assert r.headers["ETag"] == '"2"'
    patched = await r.json()
    assert patched["name"] == "Ann Li-Zhang" and patched["reserve"] is True
    assert patched["skills"] == ann["skills"]

    r = await client.delete("/v1/people/ann", headers=h | {"If-Match": '"2"'})
    assert r.status == 204
    r = await client.get("/v1/people/ann", headers=h)
    assert (await r.json())["active"] is False

    r = await client.get(
        "/v1/audit", params={"object_type": "person", "object_id": "ann"}, headers=h
    )
    assert r.status == 200
    entries = (await r.json())["items"]
    assert [e["action"] for e in entries] == ["create", "update", "deactivate"]
    assert entries[1]["before"]["name"] == "Ann Li"
    assert entries[1]["after"]["name"] == "Ann Li-Zhang"


async def test_admin_can_purge_an_unreferenced_person(client: Any, admin_token: str) -> None:
    await setup(client, admin_token)
    h = bearer(admin_token)
    r = await client.delete("/v1/people/bob", params={"purge": "true"}, headers=h)
    assert r.status == 204
    assert (await client.get("/v1/people/bob", headers=h)).status == 404


async def test_filters_and_cursor_pagination(client: Any, admin_token: str) -> None:
    await setup(client, admin_token)
    h = bearer(admin_token)

    async def ids(**params: str) -> list[str]:
        r = await client.get("/v1/people", params=params, headers=h)
        assert r.status == 200, await r.text()
        return [p["id"] for p in (await r.json())["items"]]

    assert await ids() == ["ann", "bob"]
    assert await ids(jurisdiction="pd") == ["ann"]
    assert await ids(jurisdiction="sh") == ["ann", "bob"]
    assert await ids(jurisdiction="nowhere") == []
    assert await ids(kind="staff") == ["bob"]
    assert await ids(skill="first_aid") == ["ann"]
    assert await ids(skill="driver") == ["bob"]  # Ann's driver skill has expired
    assert await ids(skill="driver", min_level="5") == []
    assert await ids(reserve="true") == ["bob"]
    assert await ids(q="li") == ["ann"]
    assert await ids(q="%") == []
    assert await ids(active="false") == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        body = await (await client.get("/v1/people", params=params, headers=h)).json()
        seen += [p["id"] for p in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == ["ann", "bob"]
    r = await client.get("/v1/people", params={"kind": "robot"}, headers=h)
    assert r.status == 422


async def test_observer_sees_people_in_scope_without_contacts_or_home(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await setup(client, admin_token)
    observer = bearer(await make_token(db_dsn, "observer", "pd"))
    r = await client.get("/v1/people", headers=observer)
    (item,) = (await r.json())["items"]
    assert item["id"] == "ann" and item["skills"]
    assert "contacts" not in item and "home" not in item
    r = await client.get("/v1/people/ann", headers=observer)
    assert r.status == 200 and "contacts" not in await r.json()
    r = await client.patch("/v1/people/ann", json={"name": "X"}, headers=observer)
    assert r.status == 403


async def test_coordinator_sees_pii_in_scope_but_cannot_touch_another_district(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await setup(client, admin_token)
    coord = bearer(await make_token(db_dsn, "coordinator", "pd"))
    r = await client.get("/v1/people/ann", headers=coord)
    assert (await r.json())["contacts"]["phone"] == "+86 138 0000 0001"
    assert [
        p["id"] for p in (await (await client.get("/v1/people", headers=coord)).json())["items"]
    ] == ["ann"]
    assert (await client.get("/v1/people/bob", headers=coord)).status == 404
    r = await client.patch("/v1/people/bob", json={"name": "Hacked"}, headers=coord)
    assert r.status == 404
    assert (await client.delete("/v1/people/bob", headers=coord)).status == 404
    r = await client.post("/v1/people", json=BOB | {"id": "bob2"}, headers=coord)
    assert r.status == 403 and r.content_type == "application/problem+json"
    r = await client.patch("/v1/people/ann", json={"jurisdiction": "hp"}, headers=coord)
    assert r.status == 403
    r = await client.delete("/v1/people/ann", params={"purge": "true"}, headers=coord)
    assert r.status == 403
    bob = await (await client.get("/v1/people/bob", headers=bearer(admin_token))).json()
    assert bob["name"] == "Bob Wang" and bob["version"] == 1
    ann = await (await client.get("/v1/people/ann", headers=bearer(admin_token))).json()
    assert ann["jurisdiction"] == "pd-lujiazui" and ann["version"] == 1


async def test_volunteer_sees_only_their_own_record_with_pii(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await setup(client, admin_token)
    vol = bearer(await make_token(db_dsn, "volunteer", person="ann"))
    r = await client.get("/v1/people/ann", headers=vol)
    assert r.status == 200 and (await r.json())["contacts"]["email"] == "ann@example.org"
    assert (await client.get("/v1/people/bob", headers=vol)).status == 404
    r = await client.get("/v1/people", headers=vol)
    assert [p["id"] for p in (await r.json())["items"]] == ["ann"]
    r = await client.patch("/v1/people/ann", json={"name": "Me"}, headers=vol)
    assert r.status == 403


async def test_bad_inputs_get_problem_json_and_write_nothing(client: Any, admin_token: str) -> None:
    await setup(client, admin_token)
    h = bearer(admin_token) | {"Content-Type": "application/json"}
    base = b'"kind": "staff", "name": "X", "jurisdiction": "pd", "home": {"lat": 1, "lon": 2}'
    cases = [
        (b"{not json", 422, None),
        (
            b'{"kind": "staff", "name": 5, "jurisdiction": "pd", "home": {"lat": 1, "lon": 2}}',
            422,
            "/name",
        ),
        (
            b'{"kind": "staff", "name": "X", "jurisdiction": "pd", "home": {"lat": "1", "lon": 2}}',
            422,
            "/home/lat",
        ),
        (b"{" + base + b', "colour": "red"}', 422, "/colour"),
        (
            b'{"kind": "staff", "name": "X", "jurisdiction": "pd", "home": {"lat": 1, "lon": 181}}',
            422,
            "/home/lon",
        ),
        (
            b'{"kind": "staff", "name": "X", "jurisdiction": "nowhere", "home": {"lat": 1, "lon": 2}}',
            422,
            "/jurisdiction",
        ),
        (b"{" + base + b', "id": "ann"}', 409, "/id"),
        (b"{" + base + b', "id": "has space"}', 422, "/id"),
        (b"{" + base + b', "skills": [{"name": "x", "level": 9}]}', 422, "/skills/0/level"),
        (b"{" + base + b', "max_hours_per_24h": 25}', 422, "/max_hours_per_24h"),
    ]
    for raw, status, loc in cases:
        r = await client.post("/v1/people", data=raw, headers=h)
        assert r.status == status, (raw, await r.text())
        assert r.content_type == "application/problem+json"
        body = await r.json()
        if loc:
            assert loc in [e["loc"] for e in body["errors"]], body
    r = await client.post("/v1/people", data=b"kind=staff", headers=bearer(admin_token))
    assert r.status == 415
    assert await people_count(client, admin_token) == 2

    r = await client.patch("/v1/people/ann", json={"name": None}, headers=bearer(admin_token))
    assert r.status == 422
    r = await client.patch("/v1/people/ann", json={"home": {"lat": -91, "lon": 0}}, headers=h)
    assert r.status == 422
    r = await client.patch("/v1/people/ghost", json={"name": "X"}, headers=h)
    assert r.status == 404
    ann = await (await client.get("/v1/people/ann", headers=h)).json()
    assert ann["version"] == 1 and ann["name"] == "Ann Li"


async def test_stale_version_and_if_match_are_refused(client: Any, admin_token: str) -> None:
    await setup(client, admin_token)
    h = bearer(admin_token)
    r = await client.patch("/v1/people/ann", json={"name": "New", "version": 1}, headers=h)
    assert r.status == 200
    r = await client.patch("/v1/people/ann", json={"name": "Stale", "version": 1}, headers=h)
    assert r.status == 409 and (await r.json())["current_version"] == 2
    r = await client.patch(
        "/v1/people/ann", json={"name": "Stale"}, headers=h | {"If-Match": '"1"'}
    )
    assert r.status == 412
    r = await client.delete("/v1/people/ann", headers=h | {"If-Match": '"1"'})
    assert r.status == 412
    ann = await (await client.get("/v1/people/ann", headers=h)).json()
    assert ann["name"] == "New" and ann["active"] is True


async def test_people_routes_are_documented_in_openapi(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert {"get", "post"} <= set(spec["paths"]["/v1/people"])
    assert {"get", "patch", "delete"} <= set(spec["paths"]["/v1/people/{id}"])
    assert "post" in spec["paths"]["/v1/people:import"]
