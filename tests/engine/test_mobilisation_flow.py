"""End to end through the HTTP API: emergency, incidents, offers, answers, refills, stand-down.

The engine is driven by an injected clock: the test moves time and calls ``run_due``; nothing
sleeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatch.clock import ManualClock
from tests.conftest import bearer, make_token
from tests.engine.conftest import build_city, engine_of, level, roster, travel_minutes

INCIDENTS = [
    {
        "id": "i-collapse",
        "type": "collapse",
        "title": "Wall collapse",
        "priority": 1,
        "location": {"lat": 31.232, "lon": 121.468},
        "demands": [
            {"skill": "search_rescue", "count": 4, "min": 2},
            {"skill": "first_aid", "count": 2},
        ],
    },
    {
        "id": "i-flood",
        "type": "flood",
        "title": "Basement flooding",
        "priority": 2,
        "location": {"lat": 31.225, "lon": 121.480},
        "demands": [{"skill": "logistics", "count": 3}],
    },
    {
        "id": "i-injury",
        "type": "medical",
        "title": "Injured resident",
        "priority": 3,
        "location": {"lat": 31.240, "lon": 121.460},
        "demands": [{"skill": "first_aid", "count": 1}, {"skill": "driver", "count": 1}],
    },
]
DEMAND = sum(d["count"] for i in INCIDENTS for d in i["demands"])


async def offers(client: Any, token: str, **params: str) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/assignments", params={"limit": "1000", **params}, headers=bearer(token)
    )
    assert r.status == 200, await r.text()
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def test_emergency_offers_refills_and_stand_down(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    client = eng_client
    people = roster()
    by_id = {p["id"]: p for p in people}
    await build_city(client, admin_token, people)
    coord = await make_token(db_dsn, "coordinator", "a")
    hc = bearer(coord)

    # District A goes to emergency level II.
    await level(client, coord, "a", "II", reason="storm surge")
    r = await client.get("/v1/jurisdictions/a-1/mode", headers=hc)
    assert (await r.json())["effective"]["level"] == "II"

    # Three incidents declared in street A1.
    for inc in INCIDENTS:
        r = await client.post("/v1/incidents", json={**inc, "jurisdiction": "a-1"}, headers=hc)
        assert r.status == 201, await r.text()

    # Nothing is offered before the debounce has passed; then one plan offers every slot.
    engine = engine_of(client)
    report = await engine.run_due()
    assert report.plan_id is None
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert report.plan_id is not None
    offered = await offers(client, coord, status="offered")
    assert len(offered) == DEMAND
    assert all(by_id[o["person"]]["jurisdiction"] == "a-1" for o in offered), "no mutual aid at II"
    assert all(o["reason"] for o in offered), "every pick is explained"
    deadline = min(o["offer_deadline"] for o in offered)
    assert deadline == (clock.now() + timedelta(seconds=180)).isoformat()  # level II policy

    # Everyone answers except two: one declines, one stays silent.
    decliner, silent, *accepters = sorted(offered, key=lambda o: o["id"])
    for o in accepters:
        tok = await make_token(db_dsn, "volunteer", person=o["person"])
        r = await client.post(f"/v1/assignments/{o['id']}/accept", headers=bearer(tok))
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == "accepted"
    tok = await make_token(db_dsn, "volunteer", person=decliner["person"])
    r = await client.post(
        f"/v1/assignments/{decliner['id']}/decline",
        json={"reason": "caring for a child"},
        headers=bearer(tok),
    )
    assert r.status == 200 and (await r.json())["decline_reason"] == "caring for a child"

    # The decline is refilled by the best remaining fit, not the next name on a list.
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert report.offers == 1 and report.withdrawn == 0
    now_offered = await offers(client, coord, status="offered")
    new = [o for o in now_offered if o["id"] not in {silent["id"]}]
    assert len(new) == 1
    refill = new[0]
    assert (refill["incident"], refill["skill"]) == (decliner["incident"], decliner["skill"])
    assert refill["person"] != decliner["person"]
    busy = {
        o["person"] for o in await offers(client, coord) if o["status"] in ("offered", "accepted")
    }
    inc = next(i for i in INCIDENTS if i["id"] == refill["incident"])
    loc = inc["location"]
    candidates = [
        travel_minutes(p["home"]["lat"], p["home"]["lon"], loc["lat"], loc["lon"])
        for p in people
        if p["jurisdiction"] == "a-1"
        and refill["skill"] in {s["name"] for s in p["skills"]}
        and p["id"] not in busy | {decliner["person"]}
    ]
    assert refill["travel_minutes"] <= min(candidates) + 1e-3

    # The silent one expires at the deadline, exactly once, and is replaced.
    clock.advance(timedelta(seconds=180))
    report = await engine.run_due()
    assert silent["id"] in report.expired
    report_again = await engine.run_due()
    assert report_again.expired == []
    r = await client.get(f"/v1/assignments/{silent['id']}", headers=hc)
    assert (await r.json())["status"] == "expired"
    current = await offers(client, coord, status="offered")
    assert any(
        (o["incident"], o["skill"]) == (silent["incident"], silent["skill"])
        and o["person"] != silent["person"]
        for o in current
    )
    # Answering after expiry is a clear 409.
    tok = await make_token(db_dsn, "volunteer", person=silent["person"])
    r = await client.post(f"/v1/assignments/{silent['id']}/accept", headers=bearer(tok))
    assert r.status == 409 and r.content_type == "application/problem+json"

    # Accepted people go to work; an hour later district A stands down.
    first = accepters[0]
    tok = await make_token(db_dsn, "volunteer", person=first["person"])
    for status in ("en_route", "on_scene"):
        r = await client.post(
            f"/v1/assignments/{first['id']}/status", json={"status": status}, headers=bearer(tok)
        )
        assert r.status == 200, await r.text()
    clock.advance(timedelta(hours=1))
    r = await client.put(
        "/v1/jurisdictions/a/mode", json={"mode": "routine", "reason": "surge over"}, headers=hc
    )
    assert r.status == 200, await r.text()
    summary = (await r.json())["stand_down"]
    assert summary["released"] == len(accepters)
    assert summary["withdrawn"] == len(current)
    assert summary["hours"][first["person"]]["hours"] >= 1.0
    r = await client.get(f"/v1/stand-downs/{summary['id']}", headers=hc)
    assert r.status == 200

    con = await asyncpg.connect(db_dsn)
    try:
        active = await con.fetchval(
            "SELECT count(*) FROM assignments"
            " WHERE status IN ('offered', 'accepted', 'en_route', 'on_scene')"
        )
        assert active == 0
        released_msgs = await con.fetchval("SELECT count(*) FROM outbox WHERE kind = 'released'")
        assert released_msgs == len(accepters)
        stamps = await con.fetchrow(
            "SELECT proposed_at, offered_at, accepted_at, en_route_at, on_scene_at, released_at"
            " FROM assignments WHERE id = $1",
            first["id"],
        )
        assert all(v is not None for v in stamps.values())
    finally:
        await con.close()


async def test_restart_loses_no_offer_and_expires_none_twice(
    settings: Any, admin_token: str, db_dsn: str, aiohttp_client: Any
) -> None:
    from api.app import create_app
    from tests.engine.conftest import START

    clock = ManualClock(START)
    first = await aiohttp_client(create_app(settings, clock=clock))
    people = roster(40)
    await build_city(first, admin_token, people)
    h = bearer(admin_token)
    await level(first, admin_token, "a", "III", reason="x")
    r = await first.post("/v1/incidents", json={**INCIDENTS[0], "jurisdiction": "a-1"}, headers=h)
    assert r.status == 201
    clock.advance(timedelta(seconds=2))
    await engine_of(first).run_due()
    before = await offers(first, admin_token, status="offered")
    assert before
    await first.close()  # the whole app stops: pool, engine, executor

    second = await aiohttp_client(create_app(settings, clock=clock))
    engine = engine_of(second)
    deadline = min(datetime.fromisoformat(o["offer_deadline"]) for o in before)
    # Re-armed from the database: the next wake-up is no later than the first offer deadline.
    due = await engine.next_due()
    assert due is not None and due <= deadline
    after = await offers(second, admin_token, status="offered")
    assert {o["id"] for o in after} == {o["id"] for o in before}
    clock.set(deadline)
    results = [await engine.run_due(), await engine.run_due()]
    expired = [e for rep in results for e in rep.expired]
    assert sorted(expired) == sorted(o["id"] for o in before)
    con = await asyncpg.connect(db_dsn)
    try:
        n = await con.fetchval("SELECT count(*) FROM outbox WHERE kind = 'offer_expired'")
        assert n == len(before)
    finally:
        await con.close()
