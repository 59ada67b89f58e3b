"""What the planner sees (certifications, work limits, availability) and supplies end to end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dispatch.clock import ManualClock
from dispatch.storage import world as world_store
from dispatch.storage.database import create_pool
from tests.conftest import bearer
from tests.engine.conftest import START, build_city, engine_of, level, medic, past_work


async def test_world_respects_certificates_rest_hours_and_availability(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    people = [
        medic("valid"),
        medic("expired-cert", certifications=[{"name": "first_aid", "expires_on": "2026-01-01"}]),
        medic(
            "expired-skill", skills=[{"name": "first_aid", "level": 3, "expires_on": "2026-07-13"}]
        ),
        medic(
            "away",
            availability={
                "weekly": [],
                "exceptions": [
                    {
                        "start": "2026-07-14T00:00:00Z",
                        "end": "2026-07-15T00:00:00Z",
                        "available": False,
                    }
                ],
            },
        ),
        medic("rested", min_rest_hours=8),
        medic("tired", max_hours_per_24h=4),
    ]
    await build_city(eng_client, admin_token, people)
    # 'rested' was released 2 h ago after a short job; 'tired' worked 4 h today.
    await past_work(
        db_dsn,
        {
            "rested": (START - timedelta(hours=3), START - timedelta(hours=2)),
            "tired": (START - timedelta(hours=14), START - timedelta(hours=10)),
        },
    )
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as c:
            world, _ = await world_store.load(c, START)
    finally:
        await pool.close()
    view = {p.id: p for p in world.people}
    assert view["valid"].skills == ("first_aid",)
    assert view["expired-cert"].skills == ()
    assert view["expired-skill"].skills == ()
    assert view["away"].available_now is False and view["valid"].available_now is True
    assert view["rested"].hours_left == 0.0
    assert view["tired"].hours_left == 0.0
    assert view["valid"].hours_left == 12.0


async def test_supplies_are_reserved_then_dispatched_delivered_or_returned(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    h = bearer(admin_token)
    await build_city(eng_client, admin_token, [medic("m1")])
    assert (
        await eng_client.post(
            "/v1/items", json={"code": "blanket", "name": "Blanket", "unit": "piece"}, headers=h
        )
    ).status == 201
    r = await eng_client.post(
        "/v1/depots",
        json={
            "id": "d1",
            "name": "Depot",
            "jurisdiction": "a",
            "location": {"lat": 31.22, "lon": 121.46},
            "stock": {"blanket": 100},
        },
        headers=h,
    )
    assert r.status == 201
    await level(eng_client, admin_token, "a", "III", reason="cold")
    for iid, qty in (("shelter-1", 60), ("shelter-2", 60)):
        r = await eng_client.post(
            "/v1/incidents",
            json={
                "id": iid,
                "type": "shelter",
                "title": iid,
                "priority": 2 if iid.endswith("1") else 3,
                "jurisdiction": "a-1",
                "location": {"lat": 31.23, "lon": 121.47},
                "supplies": {"blanket": qty},
            },
            headers=h,
        )
        assert r.status == 201, await r.text()
    clock.advance(timedelta(seconds=2))
    plan_id = (await engine_of(eng_client).run_due()).plan_id
    allocs = (await (await eng_client.get("/v1/allocations", headers=h)).json())["items"]
    by_incident = {a["incident_id"]: a for a in allocs}
    assert by_incident["shelter-1"]["quantity"] == 60  # the higher priority is served in full
    assert by_incident["shelter-2"]["quantity"] == 40
    depot = await (await eng_client.get("/v1/depots/d1", headers=h)).json()
    assert depot["stock"]["blanket"]["reserved"] == 100
    unmet = await (await eng_client.get("/v1/unmet", headers=h)).json()
    assert {"incident": "shelter-2", "item": "blanket", "missing": 20} in unmet["items"]
    plan = await (await eng_client.get(f"/v1/plans/{plan_id}", headers=h)).json()
    assert sum(len(g["allocations"]) for g in plan["groups"]) == 2

    a1, a2 = by_incident["shelter-1"]["id"], by_incident["shelter-2"]["id"]
    for target in ("dispatched", "delivered"):
        r = await eng_client.post(
            f"/v1/allocations/{a1}/status", json={"status": target}, headers=h
        )
        assert r.status == 200, await r.text()
    r = await eng_client.post(
        f"/v1/allocations/{a2}/status", json={"status": "delivered"}, headers=h
    )
    assert r.status == 409  # must be dispatched first
    r = await eng_client.post(
        f"/v1/allocations/{a2}/status", json={"status": "cancelled"}, headers=h
    )
    assert r.status == 200
    depot = await (await eng_client.get("/v1/depots/d1", headers=h)).json()
    assert depot["stock"]["blanket"] == {**depot["stock"]["blanket"], "quantity": 40, "reserved": 0}
    # Closing an incident frees what it still holds.
    clock.advance(timedelta(seconds=2))
    await engine_of(eng_client).run_due()
    r = await eng_client.post(
        "/v1/incidents/shelter-2/status", json={"status": "closed", "reason": "done"}, headers=h
    )
    assert r.status == 200, await r.text()
    depot = await (await eng_client.get("/v1/depots/d1", headers=h)).json()
    assert depot["stock"]["blanket"]["reserved"] == 0
