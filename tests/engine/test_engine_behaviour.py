"""Engine behaviours: debounced re-plans, superseded solves, pins and forbids, leadership."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import asyncpg

from api.app import create_app
from api.keys import RUNNER
from dispatch.clock import ManualClock
from dispatch.config import Settings
from dispatch.services import engine as engine_mod
from dispatch.storage import engine as engine_store
from tests.conftest import bearer
from tests.engine.conftest import FLOOD, build_city, engine_of, level, roster


async def test_a_burst_of_fifty_updates_causes_one_solve(
    eng_client: Any, admin_token: str, clock: ManualClock
) -> None:
    await build_city(eng_client, admin_token, roster(60))
    await level(eng_client, admin_token, "a", "II")
    h = bearer(admin_token)
    assert (await eng_client.post("/v1/incidents", json=FLOOD, headers=h)).status == 201
    for k in range(50):
        r = await eng_client.patch(
            "/v1/incidents/i-flood",
            json={"demands": [{"skill": "first_aid", "count": 1 + k % 3}]},
            headers=h,
        )
        assert r.status == 200, await r.text()
    engine = engine_of(eng_client)
    clock.advance(timedelta(seconds=2))
    await engine.run_due()
    await engine.run_due()
    assert engine.plans_made == 1
    r = await eng_client.get("/v1/plans", headers=h)
    plans = (await r.json())["items"]
    assert len(plans) == 1 and "incident i-flood changed" in plans[0]["trigger"]


async def test_a_newer_request_supersedes_a_running_solve(
    eng_client: Any, admin_token: str, clock: ManualClock
) -> None:
    await build_city(eng_client, admin_token, roster(30))
    await level(eng_client, admin_token, "a", "II")
    assert (
        await eng_client.post("/v1/incidents", json=FLOOD, headers=bearer(admin_token))
    ).status == 201
    engine = engine_of(eng_client)
    loop = asyncio.get_running_loop()
    calls = 0

    def planner(world: Any, limit: float, seed: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # while the first solve runs, the world changes

            async def bump() -> None:
                async with engine.pool.acquire() as con:
                    await engine_store.request_replan(con, clock.now(), "newer", 0)

            asyncio.run_coroutine_threadsafe(bump(), loop).result(10)
        return engine_mod.plan_in_executor(world, limit, seed)

    engine.planner = planner
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert calls == 2 and engine.superseded == 1
    assert engine.plans_made == 1 and report.plan_id is not None


async def test_pins_and_forbids_bind_the_solver(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    people = roster(60)
    await build_city(eng_client, admin_token, people)
    await level(eng_client, admin_token, "a", "II")
    h = bearer(admin_token)
    assert (await eng_client.post("/v1/incidents", json=FLOOD, headers=h)).status == 201
    engine = engine_of(eng_client)
    clock.advance(timedelta(seconds=2))
    await engine.run_due()
    r = await eng_client.get("/v1/assignments", params={"incident": "i-flood"}, headers=h)
    first = {a["person"] for a in (await r.json())["items"]}
    assert len(first) == 2
    banned = sorted(first)[0]
    medics = [
        p["id"]
        for p in people
        if p["jurisdiction"] == "a-1"
        and "first_aid" in {s["name"] for s in p["skills"]}
        and p["id"] not in first
    ]
    pinned = medics[-1]
    r = await eng_client.post("/v1/incidents/i-flood/forbids", json={"person": banned}, headers=h)
    assert r.status == 201, await r.text()
    r = await eng_client.post(
        "/v1/incidents/i-flood/pins", json={"person": pinned, "skill": "first_aid"}, headers=h
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["pinned"] is True
    clock.advance(timedelta(seconds=2))
    await engine.run_due()
    r = await eng_client.get(
        "/v1/assignments", params={"incident": "i-flood", "status": "offered,accepted"}, headers=h
    )
    now = {a["person"] for a in (await r.json())["items"]}
    assert pinned in now and banned not in now and len(now) == 2
    r = await eng_client.get("/v1/incidents/i-flood/rules", headers=h)
    rules = {x["person"]: x["rule"] for x in (await r.json())["items"]}
    assert rules == {banned: "forbid", pinned: "pin"}
    r = await eng_client.get("/v1/incidents/i-flood/plan", headers=h)
    body = await r.json()
    assert body["unmet"] == [] and all(p["reason"] for p in body["picks"])


async def test_only_one_of_two_instances_plans_and_the_other_takes_over(
    settings: Settings, admin_token: str, db_dsn: str, aiohttp_client: Any
) -> None:
    live = dataclasses.replace(settings, engine=True, leader_retry_s=0.2, replan_debounce_s=0.2)
    one = await aiohttp_client(create_app(live))
    two = await aiohttp_client(create_app(live))
    runners = [one.server.app[RUNNER], two.server.app[RUNNER]]
    leaders = [r for r in runners if r.is_leader]
    assert len(leaders) == 1
    follower = two if runners[0].is_leader else one
    leader_client = one if follower is two else two

    # A request made on the follower reaches the leader, which plans (wall clock, real scheduler).
    # A stored plan is announced on the coordinators' event channel at commit: listen for it.
    con = await asyncpg.connect(db_dsn)
    planned = asyncio.Event()

    def on_event(_con: Any, _pid: int, _channel: str, payload: str) -> None:
        if '"plan_stored"' in payload:
            planned.set()

    await con.add_listener("muster_events", on_event)
    try:
        await build_city(follower, admin_token, roster(40))
        await level(follower, admin_token, "a", "II")
        assert (
            await follower.post("/v1/incidents", json=FLOOD, headers=bearer(admin_token))
        ).status == 201
        try:
            await asyncio.wait_for(planned.wait(), 20)
        except TimeoutError:
            raise AssertionError("no plan was made") from None
        assert await con.fetchval("SELECT count(*) FROM plans") >= 1
        # The leader stops; the follower takes the lock over.
        await leader_client.close()
        new_leader = follower.server.app[RUNNER]
        await asyncio.wait_for(new_leader.leader_event.wait(), 10)
        assert new_leader.is_leader
    finally:
        await con.close()
