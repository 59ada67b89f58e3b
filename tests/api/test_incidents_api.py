"""Incidents through the real HTTP API, checked against the database."""

from __future__ import annotations

import json
from typing import Any

from tests.api.test_supplies_api import JSON, assert_problem, count, setup_world
from tests.conftest import bearer, make_token


def incident(incident_id: str, jurisdiction: str = "pd", **extra: Any) -> dict[str, Any]:
    return {
        "id": incident_id,
        "type": "flood",
        "title": f"Flooding {incident_id}",
        "location": {"lat": 31.24, "lon": 121.5},
        "jurisdiction": jurisdiction,
        "priority": 2,
        "demands": [{"skill": "first_aid", "count": 4, "min": 2}, {"skill": "driver", "count": 1}],
        "supplies": {"water": 50},
        **extra,
    }


async def declare(
    client: Any, token: str, incident_id: str, jurisdiction: str = "pd", **extra: Any
) -> Any:
    r = await client.post(
        "/v1/incidents", json=incident(incident_id, jurisdiction, **extra), headers=bearer(token)
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def test_coordinator_declares_an_incident_with_demands_and_supplies(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    coord = await make_token(db_dsn, "coordinator", "pd")
    r = await client.post("/v1/incidents", json=incident("inc-1", "pd-ljz"), headers=bearer(coord))
    assert r.status == 201, await r.text()
    assert r.headers["ETag"] == '"1"' and r.headers["Location"] == "/v1/incidents/inc-1"
    out = await r.json()
    assert out["status"] == "reported" and out["open"] is True and out["closed_at"] is None
    assert out["demands"] == [
        {"skill": "first_aid", "count": 4, "min": 2},
        {"skill": "driver", "count": 1, "min": 1},
    ]
    assert out["supplies"] == {"water": 50}
    assert out["geometry"] == {"type": "Point", "coordinates": [121.5, 31.24]}
    r = await client.get("/v1/incidents/inc-1", headers=bearer(coord))
    assert await r.json() == out
    gen = await declare(client, coord, "", "pd", id=None, demands=[], supplies={})
    assert gen["id"].startswith("inc-")
    row = await pool.fetchrow("SELECT priority, demands FROM incidents WHERE id = 'inc-1'")
    assert row["priority"] == 2 and row["demands"][0]["min"] == 2
    audit = await pool.fetch(
        "SELECT action, actor_role FROM audit_log WHERE object_type = 'incident' ORDER BY seq"
    )
    assert [tuple(a) for a in audit] == [("create", "coordinator")] * 2
    hist = await pool.fetchrow("SELECT * FROM incident_status_history WHERE incident_id = 'inc-1'")
    assert hist["from_status"] is None and hist["to_status"] == "reported"


async def test_bad_incident_inputs_get_problem_json_and_write_nothing(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "inc-1")
    base = incident("inc-2")

    def with_(**kw: Any) -> str:
        return json.dumps(base | kw)

    def without(key: str) -> str:
        return json.dumps({k: v for k, v in base.items() if k != key})

    cases: list[tuple[str, int, str | None]] = [
        ("{not json", 422, None),
        ("[1, 2]", 422, None),
        (with_(priority="high"), 422, "/priority"),
        (with_(priority=2.0), 422, "/priority"),
        (with_(title=12), 422, "/title"),
        (with_(colour="red"), 422, "/colour"),
        (without("location"), 422, "/location"),
        (with_(location={"lat": 90.5, "lon": 0}), 422, "/location/lat"),
        (with_(location={"lat": 0, "lon": 180.01}), 422, "/location/lon"),
        (with_(location={"lat": "31", "lon": 121}), 422, "/location/lat"),
        (with_(priority=0), 422, "/priority"),
        (with_(priority=6), 422, "/priority"),
        (with_(jurisdiction="mars"), 422, "/jurisdiction"),
        (with_(supplies={"rope": 3}), 422, "/supplies/rope"),
        (with_(supplies={"water": 0}), 422, "/supplies/water"),
        (with_(supplies={"water": -3}), 422, "/supplies/water"),
        (with_(demands=[{"skill": "driver", "count": 2, "min": 3}]), 422, "/demands/0/min"),
        (with_(demands=[{"skill": "driver", "count": 0}]), 422, "/demands/0/count"),
        (with_(demands=[{"skill": "driver", "count": 2, "max": 3}]), 422, "/demands/0/max"),
        (with_(demands=[{"skill": "driver", "count": 1}] * 2), 422, "/demands"),
        (with_(status="closed"), 422, "/status"),
        (with_(id="inc-1"), 409, "/id"),
    ]
    h = bearer(admin_token) | JSON
    for raw, status, loc in cases:
        r = await client.post("/v1/incidents", data=raw, headers=h)
        await assert_problem(r, status, loc)
    r = await client.post("/v1/incidents", data=with_(), headers=bearer(admin_token))
    await assert_problem(r, 415)
    assert [r["id"] for r in await pool.fetch("SELECT id FROM incidents")] == ["inc-1"]
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE object_type = 'incident'") == 1
    assert await count(pool, "SELECT count(*) FROM incident_status_history") == 1


async def test_bad_patches_and_status_changes_write_nothing(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "inc-1")
    h = bearer(admin_token)
    url = "/v1/incidents/inc-1"
    patches: list[tuple[Any, str]] = [
        ({"priority": 9}, "/priority"),
        ({"status": "active"}, "/status"),
        ({"location": {"lat": -91, "lon": 0}}, "/location/lat"),
        ({"jurisdiction": "mars"}, "/jurisdiction"),
        ({"supplies": {"rope": 1}}, "/supplies/rope"),
        ({"demands": [{"skill": "driver", "count": 1, "min": 2}]}, "/demands/0/min"),
        ({"version": "1"}, "/version"),
    ]
    for body, loc in patches:
        await assert_problem(await client.patch(url, json=body, headers=h), 422, loc)
    for body, loc in [({"status": "done"}, "/status"), ({"status": "active", "why": 1}, "/why")]:
        r = await client.post(url + "/status", json=body, headers=h)
        await assert_problem(r, 422, loc)
    row = await pool.fetchrow("SELECT version, status, priority FROM incidents")
    assert tuple(row) == (1, "reported", 2)


async def test_coordinator_cannot_see_or_change_another_districts_incidents(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "inc-hp", "hp")
    coord = await make_token(db_dsn, "coordinator", "pd")
    ch = bearer(coord)
    await declare(client, coord, "inc-pd", "pd-ljz")

    r = await client.post("/v1/incidents", json=incident("inc-x", "hp"), headers=ch)
    await assert_problem(r, 403)
    await assert_problem(await client.get("/v1/incidents/inc-hp", headers=ch), 404)
    r = await client.patch("/v1/incidents/inc-hp", json={"priority": 1}, headers=ch)
    await assert_problem(r, 404)
    r = await client.post("/v1/incidents/inc-hp/status", json={"status": "active"}, headers=ch)
    await assert_problem(r, 404)
    r = await client.patch("/v1/incidents/inc-pd", json={"jurisdiction": "hp"}, headers=ch)
    await assert_problem(r, 403)
    r = await client.get("/v1/incidents", headers=ch)
    assert [i["id"] for i in (await r.json())["items"]] == ["inc-pd"]
    r = await client.get("/v1/incidents", params={"jurisdiction": "hp"}, headers=ch)
    assert (await r.json())["items"] == []

    observer = bearer(await make_token(db_dsn, "observer", "sh"))
    r = await client.get("/v1/incidents/inc-hp", headers=observer)
    assert r.status == 200
    r = await client.post("/v1/incidents", json=incident("inc-o", "hp"), headers=observer)
    await assert_problem(r, 403)
    r = await client.patch("/v1/incidents/inc-hp", json={"priority": 1}, headers=observer)
    await assert_problem(r, 403)
    r = await client.post(
        "/v1/incidents/inc-hp/status", json={"status": "active"}, headers=observer
    )
    await assert_problem(r, 403)
    anonymous = await client.get("/v1/incidents")
    await assert_problem(anonymous, 401)

    rows = await pool.fetch(
        "SELECT id, jurisdiction_code, priority, status, version FROM incidents"
    )
    assert sorted(tuple(r) for r in rows) == [
        ("inc-hp", "hp", 2, "reported", 1),
        ("inc-pd", "pd-ljz", 2, "reported", 1),
    ]


async def test_updates_honour_versions_and_replace_demands(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "inc-1")
    h = bearer(admin_token)
    url = "/v1/incidents/inc-1"
    r = await client.patch(
        url,
        json={"priority": 1, "demands": [{"skill": "boat", "count": 2}], "version": 1},
        headers=h,
    )
    assert r.status == 200 and r.headers["ETag"] == '"2"'
    out = await r.json()
    assert out["priority"] == 1 and out["demands"] == [{"skill": "boat", "count": 2, "min": 1}]
    assert out["supplies"] == {"water": 50} and out["title"] == "Flooding inc-1"
    await assert_problem(
        await client.patch(url, json={"priority": 3, "version": 1}, headers=h), 409
    )
    r = await client.patch(url, json={"priority": 3}, headers=h | {"If-Match": '"1"'})
    await assert_problem(r, 412)
    r = await client.post(url + "/status", json={"status": "active", "version": 1}, headers=h)
    await assert_problem(r, 409)
    r = await client.post(
        url + "/status", json={"status": "active"}, headers=h | {"If-Match": '"1"'}
    )
    await assert_problem(r, 412)
    row = await pool.fetchrow("SELECT priority, status, version FROM incidents")
    assert tuple(row) == (1, "reported", 2)
    audit = await pool.fetchrow("SELECT before, after FROM audit_log WHERE action = 'update'")
    assert audit["before"]["priority"] == 2 and audit["after"]["priority"] == 1


async def test_status_follows_the_lifecycle_and_closed_is_final(
    client: Any, admin_token: str, pool: Any
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "inc-1")
    h = bearer(admin_token)
    url = "/v1/incidents/inc-1/status"

    async def move(target: str, reason: str = "") -> Any:
        return await client.post(url, json={"status": target, "reason": reason}, headers=h)

    body = await assert_problem(await move("contained"), 409)
    assert body["current_status"] == "reported" and body["allowed"] == ["active", "closed"]
    await assert_problem(await move("reported"), 409)
    for target in ("active", "contained", "active", "contained"):
        r = await move(target, f"to {target}")
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == target
    r = await move("closed", "all clear")
    out = await r.json()
    assert out["status"] == "closed" and out["open"] is False and out["closed_at"] is not None
    assert r.headers["ETag"] == '"6"'
    for target in ("active", "reported", "contained", "closed"):
        body = await assert_problem(await move(target), 409)
        assert body["allowed"] == []
    r = await client.patch("/v1/incidents/inc-1", json={"priority": 1}, headers=h)
    await assert_problem(r, 409)

    row = await pool.fetchrow("SELECT status, version, closed_at FROM incidents")
    assert row["status"] == "closed" and row["version"] == 6 and row["closed_at"] is not None
    hist = await pool.fetch(
        "SELECT from_status, to_status, reason FROM incident_status_history ORDER BY id"
    )
    assert [tuple(x) for x in hist][-2:] == [
        ("active", "contained", "to contained"),
        ("contained", "closed", "all clear"),
    ]
    assert len(hist) == 6
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE action = 'status'") == 5
    reason = await pool.fetchval("SELECT after->>'reason' FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert reason == "all clear"


async def test_list_filters_by_status_priority_type_subtree_and_openness(
    client: Any, admin_token: str
) -> None:
    await setup_world(client, admin_token)
    await declare(client, admin_token, "a", "pd", priority=1)
    await declare(client, admin_token, "b", "pd-ljz", priority=3, type="fire")
    await declare(client, admin_token, "c", "hp", priority=1, status="active")
    await declare(client, admin_token, "d", "hp", priority=5)
    h = bearer(admin_token)
    r = await client.post("/v1/incidents/d/status", json={"status": "closed"}, headers=h)
    assert r.status == 200

    async def ids(params: Any) -> list[str]:
        r = await client.get("/v1/incidents", params=params, headers=h)
        assert r.status == 200, await r.text()
        return [i["id"] for i in (await r.json())["items"]]

    assert await ids({"status": "reported,active"}) == ["a", "b", "c"]
    assert await ids([("status", "active"), ("status", "closed")]) == ["c", "d"]
    assert await ids({"priority": "1"}) == ["a", "c"]
    assert await ids({"priority": "3,5"}) == ["b", "d"]
    assert await ids({"type": "fire"}) == ["b"]
    assert await ids({"open": "true"}) == ["a", "b", "c"]
    assert await ids({"jurisdiction": "pd"}) == ["a", "b"]
    assert await ids({"jurisdiction": "hp", "open": "true"}) == ["c"]
    seen, cursor = [], None
    while True:
        r = await client.get(
            "/v1/incidents",
            params={"limit": "3"} | ({"cursor": cursor} if cursor else {}),
            headers=h,
        )
        body = await r.json()
        seen += [i["id"] for i in body["items"]]
        if (cursor := body["next"]) is None:
            break
    assert seen == ["a", "b", "c", "d"]
    for params, loc in [
        ({"status": "burning"}, "/status/0"),
        ({"priority": "7"}, "/priority/0"),
        ({"open": "perhaps"}, "/open"),
        ({"colour": "red"}, "/colour"),
        ({"limit": "0"}, "/limit"),
    ]:
        r = await client.get("/v1/incidents", params=params, headers=h)
        await assert_problem(r, 422, loc)


async def test_domain_timestamps_come_from_the_injected_clock(
    settings: Any, aiohttp_client: Any, admin_token: str, pool: Any
) -> None:
    """Time is a port: reported/closed times, status history and mode changes follow the app's
    clock (a drill's simulated time), not the database's."""
    from datetime import UTC, datetime, timedelta

    from api.app import create_app
    from dispatch.clock import ManualClock

    t0 = datetime(2031, 7, 1, 8, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    client = await aiohttp_client(create_app(settings, clock=clock))
    await setup_world(client, admin_token)
    h = bearer(admin_token)
    out = await declare(client, admin_token, "inc-t")
    assert datetime.fromisoformat(out["reported_at"]) == t0
    clock.advance(timedelta(minutes=42))
    r = await client.post("/v1/incidents/inc-t/status", json={"status": "closed"}, headers=h)
    assert r.status == 200, await r.text()
    assert datetime.fromisoformat((await r.json())["closed_at"]) == t0 + timedelta(minutes=42)
    hist = await pool.fetch("SELECT at FROM incident_status_history ORDER BY id")
    assert [x["at"] for x in hist] == [t0, t0 + timedelta(minutes=42)]

    clock.advance(timedelta(minutes=18))
    r = await client.put(
        "/v1/jurisdictions/pd/mode",
        json={"mode": "emergency", "level": "II", "reason": "river over the banks"},
        headers=h,
    )
    assert r.status == 200, await r.text()
    t_mode = t0 + timedelta(hours=1)
    assert await pool.fetchval("SELECT set_at FROM jurisdiction_modes WHERE code = 'pd'") == t_mode
    assert (
        await pool.fetchval("SELECT at FROM mode_history WHERE jurisdiction_code = 'pd'") == t_mode
    )
