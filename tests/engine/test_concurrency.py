"""Two hundred simultaneous answers, incident updates, stock moves and re-plans: the database
ends with nobody double-booked, no stock negative, and reservations matching allocations."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import asyncpg

from dispatch.clock import ManualClock
from tests.conftest import bearer, make_token
from tests.engine.conftest import build_city, engine_of, level, roster

SKILLS = ["first_aid", "driver", "search_rescue", "logistics"]


async def test_concurrent_answers_updates_and_replans_keep_invariants(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    client = eng_client
    h = bearer(admin_token)
    await build_city(client, admin_token, roster(150))
    r = await client.post(
        "/v1/items", json={"code": "water_l", "name": "Water", "unit": "litre"}, headers=h
    )
    assert r.status == 201, await r.text()
    r = await client.post(
        "/v1/depots",
        json={
            "id": "d-a",
            "name": "Depot A",
            "jurisdiction": "a",
            "location": {"lat": 31.23, "lon": 121.47},
            "stock": {"water_l": 1000},
        },
        headers=h,
    )
    assert r.status == 201, await r.text()
    await level(client, admin_token, "a", "II", reason="x")
    rng = random.Random(3)
    for k in range(10):
        body = {
            "id": f"i{k}",
            "type": "flood",
            "title": f"Incident {k}",
            "priority": 1 + k % 5,
            "jurisdiction": "a-1",
            "location": {
                "lat": 31.23 + rng.uniform(-0.01, 0.01),
                "lon": 121.47 + rng.uniform(-0.01, 0.01),
            },
            "demands": [{"skill": s, "count": rng.randint(1, 3)} for s in rng.sample(SKILLS, 2)],
            "supplies": {"water_l": 150},
        }
        assert (await client.post("/v1/incidents", json=body, headers=h)).status == 201
    engine = engine_of(client)
    clock.advance(timedelta(seconds=2))
    await engine.run_due()
    r = await client.get("/v1/assignments", params={"status": "offered", "limit": "500"}, headers=h)
    offered = (await r.json())["items"]
    assert len(offered) >= 20
    tokens = {
        o["person"]: await make_token(db_dsn, "volunteer", person=o["person"]) for o in offered
    }

    calls: list[Any] = []
    for o in offered:  # every offer gets an accept AND a decline at the same moment
        t = bearer(tokens[o["person"]])
        calls.append(client.post(f"/v1/assignments/{o['id']}/accept", headers=t))
        calls.append(
            client.post(f"/v1/assignments/{o['id']}/decline", json={"reason": "race"}, headers=t)
        )
    for k in range(200 - len(calls) - 20):
        if k % 2:
            calls.append(
                client.patch(
                    f"/v1/incidents/i{k % 10}",
                    json={
                        "demands": [{"skill": "first_aid", "count": 1 + k % 4}],
                        "supplies": {"water_l": 100 + k},
                    },
                    headers=h,
                )
            )
        else:
            calls.append(
                client.post(
                    "/v1/depots/d-a/stock:adjust",
                    json={"item": "water_l", "delta": -60, "reason": "leak"},
                    headers=h,
                )
            )

    async def replans() -> None:
        for _ in range(20):
            clock.advance(timedelta(seconds=2))
            await engine.run_due()

    responses = await asyncio.gather(*(c for c in calls), replans())
    statuses = [resp.status for resp in responses[:-1]]
    assert all(s < 500 for s in statuses), statuses
    assert len(statuses) + 20 >= 200

    con = await asyncpg.connect(db_dsn)
    try:
        doubled = await con.fetch(
            "SELECT person_id FROM assignments"
            " WHERE status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene')"
            " GROUP BY person_id HAVING count(*) > 1"
        )
        assert doubled == []
        both = await con.fetchval(
            "SELECT count(*) FROM assignments WHERE accepted_at IS NOT NULL AND declined_at IS NOT NULL"
        )
        assert both == 0
        for o in offered:
            row = await con.fetchrow("SELECT status FROM assignments WHERE id = $1", o["id"])
            # released: accepted, then the demand line shrank under it (surplus release)
            assert row["status"] in ("accepted", "declined", "withdrawn", "expired", "released")
        stock = await con.fetch("SELECT quantity, reserved FROM stock")
        assert all(s["quantity"] >= 0 and 0 <= s["reserved"] <= s["quantity"] for s in stock)
        reserved = await con.fetchval("SELECT reserved FROM stock WHERE depot_id = 'd-a'")
        allocated = await con.fetchval(
            "SELECT COALESCE(sum(quantity), 0) FROM allocations"
            " WHERE depot_id = 'd-a' AND status = 'reserved'"
        )
        assert reserved == allocated
    finally:
        await con.close()
