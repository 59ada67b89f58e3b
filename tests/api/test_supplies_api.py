"""Items, depots and stock through the real HTTP API, checked against the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import bearer, make_token

JSON = {"Content-Type": "application/json"}
TREE = [
    {"code": "sh", "kind": "city", "name": "Shanghai"},
    {"code": "pd", "parent": "sh", "kind": "district", "name": "Pudong"},
    {"code": "hp", "parent": "sh", "kind": "district", "name": "Huangpu"},
    {"code": "pd-ljz", "parent": "pd", "kind": "street", "name": "Lujiazui"},
]
ITEMS = [
    {"code": "water", "name": "Drinking water", "unit": "bottle"},
    {"code": "blanket", "name": "Blanket", "unit": "piece"},
]


async def setup_world(client: Any, admin: str) -> None:
    """Jurisdictions sh > {pd > pd-ljz, hp} and the items water and blanket."""
    for body in TREE:
        r = await client.post("/v1/jurisdictions", json=body, headers=bearer(admin))
        assert r.status == 201, await r.text()
    for body in ITEMS:
        r = await client.post("/v1/items", json=body, headers=bearer(admin))
        assert r.status == 201, await r.text()


def depot(depot_id: str, jurisdiction: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": depot_id,
        "name": f"Depot {depot_id}",
        "jurisdiction": jurisdiction,
        "location": {"lat": 31.2, "lon": 121.5},
        **extra,
    }


async def make_depot(client: Any, token: str, depot_id: str, jurisdiction: str, **kw: Any) -> Any:
    r = await client.post(
        "/v1/depots", json=depot(depot_id, jurisdiction, **kw), headers=bearer(token)
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def stock_row(pool: Any, depot_id: str, item: str) -> Any:
    return await pool.fetchrow(
        "SELECT quantity, reserved, version FROM stock WHERE depot_id = $1 AND item = $2",
        depot_id,
        item,
    )


async def count(pool: Any, sql: str, *args: Any) -> int:
    n: int = await pool.fetchval(sql, *args)
    return n


async def assert_problem(r: Any, status: int, loc: str | None = None) -> dict[str, Any]:
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    body: dict[str, Any] = await r.json()
    assert body["status"] == status
    if loc is not None:
        assert loc in [e["loc"] for e in body.get("errors", [])], body
    return body


# ---- items -------------------------------------------------------------------------------------


async def test_item_catalogue_is_admin_written_and_readable_by_staff(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    r = await client.get("/v1/items/water", headers=bearer(admin_token))
    assert await r.json() == ITEMS[0]
    observer = await make_token(db_dsn, "observer", "sh")
    r = await client.get("/v1/items", params={"limit": "1"}, headers=bearer(observer))
    body = await r.json()
    assert [i["code"] for i in body["items"]] == ["blanket"] and body["next"]
    r = await client.get("/v1/items", params={"cursor": body["next"]}, headers=bearer(observer))
    assert [i["code"] for i in (await r.json())["items"]] == ["water"]

    coord = await make_token(db_dsn, "coordinator", "pd")
    r = await client.post(
        "/v1/items", json={"code": "rope", "name": "Rope", "unit": "m"}, headers=bearer(coord)
    )
    await assert_problem(r, 403)
    r = await client.post("/v1/items", json=ITEMS[0], headers=bearer(admin_token))
    await assert_problem(r, 409, "/code")
    r = await client.post(
        "/v1/items",
        json={"code": "Rope!", "name": "Rope", "unit": "m"},
        headers=bearer(admin_token),
    )
    await assert_problem(r, 422, "/code")
    await assert_problem(await client.get("/v1/items/rope", headers=bearer(admin_token)), 404)
    assert await count(pool, "SELECT count(*) FROM items") == 2
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE object_type = 'item'") == 2


# ---- depots ------------------------------------------------------------------------------------


async def test_depot_embeds_its_stock_and_records_opening_movements(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    out = await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 100, "blanket": 0})
    assert out["stock"] == {
        "water": {"quantity": 100, "reserved": 0, "available": 100, "version": 1},
        "blanket": {"quantity": 0, "reserved": 0, "available": 0, "version": 1},
    }
    assert out["geometry"] == {"type": "Point", "coordinates": [121.5, 31.2]}
    r = await client.get("/v1/depots/dep-1", headers=bearer(admin_token))
    assert r.headers["ETag"] == '"1"'
    assert (await r.json())["stock"]["water"]["available"] == 100
    moves = await pool.fetch(
        "SELECT item, kind, delta, quantity_after FROM stock_movements ORDER BY item"
    )
    assert [tuple(m) for m in moves] == [
        ("blanket", "initial", 0, 0),
        ("water", "initial", 100, 100),
    ]
    audit = await pool.fetchrow("SELECT after FROM audit_log WHERE object_type = 'depot'")
    assert audit["after"]["stock"]["water"]["quantity"] == 100


async def test_depot_list_filters_by_subtree_and_item_and_pages_by_id(
    client: Any, admin_token: str
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "a-pd", "pd", stock={"water": 5})
    await make_depot(client, admin_token, "b-ljz", "pd-ljz", stock={"water": 0, "blanket": 3})
    await make_depot(client, admin_token, "c-hp", "hp")
    h = bearer(admin_token)

    async def ids(**params: str) -> list[str]:
        r = await client.get("/v1/depots", params=params, headers=h)
        assert r.status == 200, await r.text()
        return [d["id"] for d in (await r.json())["items"]]

    assert await ids(jurisdiction="pd") == ["a-pd", "b-ljz"]
    assert await ids(item="water") == ["a-pd"]  # b-ljz holds none
    assert await ids(item="blanket", jurisdiction="pd") == ["b-ljz"]
    assert await ids(jurisdiction="nowhere") == []
    seen, cursor = [], None
    while True:
        r = await client.get(
            "/v1/depots", params={"limit": "2"} | ({"cursor": cursor} if cursor else {}), headers=h
        )
        body = await r.json()
        seen += [d["id"] for d in body["items"]]
        if (cursor := body["next"]) is None:
            break
    assert seen == ["a-pd", "b-ljz", "c-hp"]
    r = await client.get("/v1/depots", params={"cursor": "!!"}, headers=h)
    await assert_problem(r, 422, "/cursor")


async def test_coordinator_cannot_see_or_change_another_districts_depots(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-pd", "pd-ljz", stock={"water": 10})
    await make_depot(client, admin_token, "dep-hp", "hp", stock={"water": 10})
    coord = bearer(await make_token(db_dsn, "coordinator", "pd"))

    r = await client.get("/v1/depots", headers=coord)
    assert [d["id"] for d in (await r.json())["items"]] == ["dep-pd"]
    await assert_problem(await client.get("/v1/depots/dep-hp", headers=coord), 404)
    await assert_problem(await client.get("/v1/depots/dep-hp/stock/water", headers=coord), 404)
    r = await client.patch("/v1/depots/dep-hp", json={"name": "Mine"}, headers=coord)
    await assert_problem(r, 404)
    r = await client.put("/v1/depots/dep-hp/stock/water", json={"quantity": 0}, headers=coord)
    await assert_problem(r, 404)
    r = await client.post(
        "/v1/depots/dep-hp/stock:adjust",
        json={"item": "water", "delta": -5, "reason": "x"},
        headers=coord,
    )
    await assert_problem(r, 404)
    await assert_problem(await client.delete("/v1/depots/dep-hp", headers=coord), 404)
    r = await client.post("/v1/depots", json=depot("dep-new", "hp"), headers=coord)
    await assert_problem(r, 403)
    r = await client.patch("/v1/depots/dep-pd", json={"jurisdiction": "hp"}, headers=coord)
    await assert_problem(r, 403)
    # In scope, the coordinator does manage the depot.
    r = await client.post(
        "/v1/depots/dep-pd/stock:adjust",
        json={"item": "water", "delta": -4, "reason": "handed out"},
        headers=coord,
    )
    assert r.status == 200, await r.text()

    observer = bearer(await make_token(db_dsn, "observer", "sh"))
    r = await client.get("/v1/depots/dep-hp", headers=observer)
    assert r.status == 200
    r = await client.put("/v1/depots/dep-hp/stock/water", json={"quantity": 0}, headers=observer)
    await assert_problem(r, 403)
    r = await client.post("/v1/depots", json=depot("dep-obs", "hp"), headers=observer)
    await assert_problem(r, 403)

    assert tuple(await stock_row(pool, "dep-hp", "water")) == (10, 0, 1)
    assert (await stock_row(pool, "dep-pd", "water"))["quantity"] == 6
    row = await pool.fetchrow("SELECT name, jurisdiction_code FROM depots WHERE id = 'dep-pd'")
    assert tuple(row) == ("Depot dep-pd", "pd-ljz")
    assert await count(pool, "SELECT count(*) FROM depots") == 2


async def test_bad_depot_inputs_get_problem_json_and_write_nothing(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd")
    good = '"name": "D", "jurisdiction": "pd", "location": {"lat": 31.2, "lon": 121.5}'
    cases: list[tuple[str, int, str | None]] = [
        ("{not json", 422, None),
        (
            '{"id": "d2", "name": 7, "jurisdiction": "pd", "location": {"lat": 1, "lon": 1}}',
            422,
            "/name",
        ),
        ('{"id": "d2", ' + good + ', "colour": "red"}', 422, "/colour"),
        (
            '{"id": "d2", "name": "D", "jurisdiction": "pd", "location": {"lat": 91, "lon": 0}}',
            422,
            "/location/lat",
        ),
        (
            '{"id": "d2", "name": "D", "jurisdiction": "pd", "location": {"lat": 0, "lon": -181}}',
            422,
            "/location/lon",
        ),
        (
            '{"id": "d2", "name": "D", "jurisdiction": "mars", "location": {"lat": 0, "lon": 0}}',
            422,
            "/jurisdiction",
        ),
        ('{"id": "d2", ' + good + ', "stock": {"rope": 5}}', 422, "/stock/rope"),
        ('{"id": "d2", ' + good + ', "stock": {"water": -1}}', 422, "/stock/water"),
        ('{"id": "d2", ' + good + ', "stock": {"water": "5"}}', 422, "/stock/water"),
        ('{"id": "dep-1", ' + good + "}", 409, "/id"),
    ]
    h = bearer(admin_token) | JSON
    for raw, status, loc in cases:
        r = await client.post("/v1/depots", data=raw, headers=h)
        await assert_problem(r, status, loc)
    r = await client.patch("/v1/depots/dep-1", data='{"active": "no"}', headers=h)
    await assert_problem(r, 422, "/active")
    r = await client.patch("/v1/depots/dep-1", data='{"stock": {}}', headers=h)
    await assert_problem(r, 422, "/stock")
    assert [r["id"] for r in await pool.fetch("SELECT id FROM depots")] == ["dep-1"]
    assert await count(pool, "SELECT count(*) FROM stock") == 0
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE object_type = 'depot'") == 1


async def test_depot_patch_honours_versions_and_delete_needs_an_empty_depot(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 3})
    h = bearer(admin_token)
    r = await client.patch("/v1/depots/dep-1", json={"name": "North", "version": 1}, headers=h)
    assert r.status == 200 and r.headers["ETag"] == '"2"'
    assert (await r.json())["stock"]["water"]["quantity"] == 3
    r = await client.patch("/v1/depots/dep-1", json={"name": "Stale", "version": 1}, headers=h)
    await assert_problem(r, 409)
    r = await client.patch(
        "/v1/depots/dep-1", json={"name": "Stale"}, headers=h | {"If-Match": '"1"'}
    )
    await assert_problem(r, 412)
    assert await pool.fetchval("SELECT name FROM depots WHERE id = 'dep-1'") == "North"

    body = await assert_problem(await client.delete("/v1/depots/dep-1", headers=h), 409)
    assert body["items"] == ["water"]
    r = await client.delete("/v1/depots/dep-1", headers=h | {"If-Match": '"1"'})
    await assert_problem(r, 412)
    r = await client.put("/v1/depots/dep-1/stock/water", json={"quantity": 0}, headers=h)
    assert r.status == 200
    r = await client.delete("/v1/depots/dep-1", headers=h | {"If-Match": '"2"'})
    assert r.status == 204
    await assert_problem(await client.get("/v1/depots/dep-1", headers=h), 404)
    assert await count(pool, "SELECT count(*) FROM stock") == 0
    # The ledger outlives the depot.
    assert await count(pool, "SELECT count(*) FROM stock_movements WHERE depot_id = 'dep-1'") == 2


# ---- stock -------------------------------------------------------------------------------------


async def test_set_stock_uses_the_line_version_and_refuses_negative_or_below_reserved(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 100})
    h = bearer(admin_token)
    url = "/v1/depots/dep-1/stock/water"
    r = await client.put(url, json={"quantity": 80, "version": 1, "reason": "count"}, headers=h)
    assert r.status == 200, await r.text()
    assert r.headers["ETag"] == '"2"'
    assert await r.json() == {
        "depot": "dep-1",
        "item": "water",
        "quantity": 80,
        "reserved": 0,
        "available": 80,
        "version": 2,
    }
    await assert_problem(await client.put(url, json={"quantity": 1, "version": 1}, headers=h), 409)
    r = await client.put(url, json={"quantity": 1}, headers=h | {"If-Match": '"1"'})
    await assert_problem(r, 412)
    await assert_problem(await client.put(url, json={"quantity": -5}, headers=h), 422, "/quantity")
    await assert_problem(await client.put(url, json={"quantity": 2.5}, headers=h), 422, "/quantity")
    await assert_problem(await client.put(url, data="{oops", headers=h | JSON), 422)
    r = await client.put(url, json={"quantity": 1, "colour": "blue"}, headers=h)
    await assert_problem(r, 422, "/colour")
    r = await client.put("/v1/depots/dep-1/stock/rope", json={"quantity": 1}, headers=h)
    await assert_problem(r, 404)

    await pool.execute("UPDATE stock SET reserved = 30 WHERE depot_id = 'dep-1'")  # engine's job
    body = await assert_problem(await client.put(url, json={"quantity": 29}, headers=h), 409)
    assert body["reserved"] == 30
    assert tuple(await stock_row(pool, "dep-1", "water")) == (80, 30, 3)

    # A line the depot never held starts at version 0.
    r = await client.get("/v1/depots/dep-1/stock/blanket", headers=h)
    assert (await r.json())["version"] == 0
    r = await client.put(
        "/v1/depots/dep-1/stock/blanket", json={"quantity": 7}, headers=h | {"If-Match": '"0"'}
    )
    assert r.status == 200 and (await r.json())["version"] == 1
    moves = await pool.fetch("SELECT item, kind, delta FROM stock_movements WHERE kind = 'set'")
    assert sorted(tuple(m) for m in moves) == [("blanket", "set", 7), ("water", "set", -20)]
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE action = 'stock.set'") == 2


async def test_adjust_refuses_to_go_negative_or_below_reserved_and_changes_nothing(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 100})
    h = bearer(admin_token)
    url = "/v1/depots/dep-1/stock:adjust"

    r = await client.post(url, json={"item": "water", "delta": 25, "reason": "delivery"}, headers=h)
    assert r.status == 200 and (await r.json())["quantity"] == 125
    body = await assert_problem(
        await client.post(url, json={"item": "water", "delta": -150, "reason": "x"}, headers=h),
        409,
    )
    assert body["available"] == 125
    await pool.execute("UPDATE stock SET reserved = 100 WHERE depot_id = 'dep-1'")
    r = await client.post(url, json={"item": "water", "delta": -26, "reason": "x"}, headers=h)
    await assert_problem(r, 409)
    r = await client.post(url, json={"item": "blanket", "delta": -1, "reason": "x"}, headers=h)
    await assert_problem(r, 409)
    bad: list[tuple[Any, str]] = [
        ({"item": "water", "delta": 0, "reason": "x"}, "/delta"),
        ({"item": "water", "delta": "-5", "reason": "x"}, "/delta"),
        ({"item": "water", "delta": -5}, "/reason"),
        ({"item": "water", "delta": -5, "reason": ""}, "/reason"),
        ({"item": "rope", "delta": 5, "reason": "x"}, "/item"),
        ({"item": "water", "delta": 5, "reason": "x", "extra": 1}, "/extra"),
    ]
    for payload, loc in bad:
        await assert_problem(await client.post(url, json=payload, headers=h), 422, loc)
    r = await client.post("/v1/depots/nope/stock:adjust", json=bad[0][0] | {"delta": 1}, headers=h)
    await assert_problem(r, 404)

    assert tuple(await stock_row(pool, "dep-1", "water")) == (125, 100, 3)
    assert await stock_row(pool, "dep-1", "blanket") is None
    kinds = await pool.fetch("SELECT kind, delta FROM stock_movements ORDER BY id")
    assert [tuple(k) for k in kinds] == [("initial", 100), ("adjust", 25)]
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE action = 'stock.adjust'") == 1


async def test_concurrent_withdrawals_never_drive_stock_negative(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 100})
    h = bearer(admin_token)

    async def take() -> int:
        r = await client.post(
            "/v1/depots/dep-1/stock:adjust",
            json={"item": "water", "delta": -10, "reason": "distribution"},
            headers=h,
        )
        if r.status != 200:
            await assert_problem(r, 409)
        return int(r.status)

    statuses = await asyncio.gather(*(take() for _ in range(20)))
    assert sorted(statuses) == [200] * 10 + [409] * 10
    assert (await stock_row(pool, "dep-1", "water"))["quantity"] == 0
    ledger = await pool.fetch(
        "SELECT delta, quantity_after FROM stock_movements WHERE kind = 'adjust' ORDER BY id"
    )
    assert [m["delta"] for m in ledger] == [-10] * 10
    assert [m["quantity_after"] for m in ledger] == list(range(90, -1, -10))
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE action = 'stock.adjust'") == 10


async def test_database_check_is_the_final_guard_against_negative_stock(
    client: Any, admin_token: str, pool: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup_world(client, admin_token)
    await make_depot(client, admin_token, "dep-1", "pd", stock={"water": 10})
    from dispatch import supplies

    # Simulate a bug in the code-level rules: the database must still refuse.
    monkeypatch.setattr(supplies, "adjusted", lambda *a: 0)
    monkeypatch.setattr(supplies, "check_quantity", lambda *a: None)
    h = bearer(admin_token)
    r = await client.post(
        "/v1/depots/dep-1/stock:adjust",
        json={"item": "water", "delta": -11, "reason": "bug"},
        headers=h,
    )
    await assert_problem(r, 409)
    await pool.execute("UPDATE stock SET reserved = 5 WHERE depot_id = 'dep-1'")
    r = await client.put("/v1/depots/dep-1/stock/water", json={"quantity": 4}, headers=h)
    await assert_problem(r, 409)
    assert tuple(await stock_row(pool, "dep-1", "water")) == (10, 5, 2)
    assert await count(pool, "SELECT count(*) FROM stock_movements") == 1
