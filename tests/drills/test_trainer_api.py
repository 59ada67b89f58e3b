"""The trainer API on the real app: create a drill from a scenario, start, pause, resume, stop,
status and the after-action report; trainer tokens touch no live operation; lifecycle rules,
scope and scenario errors (field and line) as problem+json."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from dispatch.config import Settings
from tests.conftest import TREE, bearer, create_jurisdictions, make_token
from tests.drills import Trainer, drill_schemas

TINY = """\
name: tiny
description: a very small drill for the API tests
start: 2026-07-18T14:00:00+08:00
duration: "+00:30:00"
seed: 3
roster:
  generated: {people: 60, seed: 2, districts: 1}
engine: {solve_time_limit_s: 0.5, debounce_s: 1.0}
responders:
  default: {accept_probability: 0.9, no_show_rate: 0.0}
objectives:
  - {metric: first_offer_within, minutes: 5, share: 0.5}
timeline:
  - {at: "+00:00:00", type: mode_changed, jurisdiction: huangpu, mode: emergency, level: II}
  - at: "+00:01:00"
    type: incident_reported
    id: t1
    title: Flooded basement
    jurisdiction: huangpu-1-1
    priority: 1
    demands: [{skill: first_aid, count: 2}]
  - {at: "+00:20:00", type: incident_closed, id: t1}
"""


async def city(client: Any, admin: str) -> None:
    """A live city ``c`` with one district ``a`` (trainer tokens need a scope)."""
    await create_jurisdictions(client, admin, TREE[:2])


def sim(d: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(d["simulated_time"])


async def test_trainer_creates_starts_pauses_resumes_stops_a_drill_and_fetches_its_report(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    d = await t.create(scenario=TINY, speed="x20", seed=7)
    assert d["status"] == "created" and d["name"] == "tiny" and d["scope"] == "c"
    assert d["options"] == {"seed": 7, "speed": "x20", "policy": "optimised", "debounce_s": 1.0}
    did = d["id"]

    await t.act(did, "resume", status=409)  # never started
    started = await t.act(did, "start")
    assert started["status"] == "running" and started["started_at"] is not None
    await t.act(did, "start", status=409)
    # Progress is rounded to 4 places: the first few simulated seconds of a long scenario show 0.
    moving = await t.until(did, lambda x: sim(x) > sim(started) and x["progress"] > 0)
    assert 0 < moving["progress"] < 1

    paused = await t.act(did, "pause")
    assert paused["status"] == "paused"
    await t.act(did, "pause", status=409)
    frozen = sim(await t.get(did))
    # While paused the simulated clock stands still: watch it over real time.
    loop = asyncio.get_running_loop()
    watch_until = loop.time() + 0.6
    while loop.time() < watch_until:  # back-to-back reads: each one is an observation
        assert sim(await t.get(did)) == frozen

    assert (await t.act(did, "resume"))["status"] == "running"
    await t.until(did, lambda x: sim(x) > frozen)

    r = await client.get(f"/v1/drills/{did}/report", headers=t.h)
    assert r.status == 409  # still running: no report yet
    assert r.content_type == "application/problem+json"

    stopping = await t.act(did, "stop", status=202)
    assert stopping["stopping"] is True
    await t.act(did, "stop", status=409)
    await t.act(did, "pause", status=409)
    stopped = await t.until(did, lambda x: x["status"] == "stopped")
    assert stopped["has_report"] and stopped["ended_at"] is not None
    assert stopped["error"] is None
    await t.act(did, "resume", status=409)
    await t.act(did, "start", status=409)

    r = await client.get(f"/v1/drills/{did}/report", headers=t.h)
    assert r.status == 200, await r.text()
    report = await r.json()
    assert report["format"] == "muster-drill-report/1"
    assert report["scenario"]["name"] == "tiny" and report["scenario"]["seed"] == 7
    assert 0 < report["stopped_at_s"] < 30 * 60  # a partial report: stopped before the end
    assert report["coverage"]["t_s"][-1] <= report["stopped_at_s"]
    assert report["messages"]["not_exercise_marked"] == 0
    r = await client.get(f"/v1/drills/{did}/report.html", headers=t.h)
    assert r.status == 200 and r.content_type == "text/html"
    assert "<img" in await r.text()

    # The drill's schema is gone; the lifecycle is in the live audit log.
    assert await drill_schemas(db_dsn) == []
    con = await asyncpg.connect(db_dsn)
    try:
        actions = [
            r["action"]
            for r in await con.fetch(
                "SELECT action FROM audit_log WHERE object_type = 'drill' AND object_id = $1"
                " ORDER BY id",
                did,
            )
        ]
    finally:
        await con.close()
    assert actions == ["create", "start", "pause", "resume", "stop", "stopped"]


async def test_a_drill_at_max_speed_runs_to_the_end_with_a_full_report(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    did = (await t.create(scenario=TINY))["id"]
    await t.act(did, "start")
    done = await t.until(did, lambda x: x["status"] not in ("running", "created"))
    assert done["status"] == "finished", done
    assert done["progress"] == 1 and done["has_report"]
    r = await client.get(f"/v1/drills/{did}/report", headers=t.h)
    report = await r.json()
    assert "stopped_at_s" not in report
    assert report["summary"]["incidents"] == 1 and report["summary"]["offers"] >= 2
    assert report["messages"]["exercise_marked"] == report["messages"]["count"] > 0
    assert report["objectives"][0]["met"] is True

    # Coordinators and observers of the scope read drills and reports; listing filters status.
    observer = bearer(await make_token(db_dsn, "observer", "c"))
    r = await client.get("/v1/drills?status=finished", headers=observer)
    assert r.status == 200
    assert [x["id"] for x in (await r.json())["items"]] == [did]
    r = await client.get("/v1/drills?status=running,paused", headers=observer)
    assert (await r.json())["items"] == []
    r = await client.get(f"/v1/drills/{did}/report", headers=observer)
    assert r.status == 200


async def test_trainer_tokens_cannot_touch_live_operations(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    from tests.engine.conftest import build_city

    people = [
        {
            "id": "v-ann",
            "kind": "volunteer",
            "name": "Ann",
            "jurisdiction": "a-1",
            "home": {"lat": 31.231, "lon": 121.469},
            "skills": [{"name": "first_aid", "level": 3}],
        }
    ]
    await build_city(client, admin_token, people)
    admin = bearer(admin_token)
    trainer = bearer(await make_token(db_dsn, "trainer", "c"))
    incident = {
        "id": "i-1",
        "type": "medical",
        "title": "Fall",
        "priority": 2,
        "location": {"lat": 31.2305, "lon": 121.4705},
        "jurisdiction": "a-1",
        "demands": [{"skill": "first_aid", "count": 1}],
    }
    r = await client.post("/v1/incidents", json=incident, headers=trainer)
    assert r.status == 403, await r.text()
    assert r.content_type == "application/problem+json"
    r = await client.put(
        "/v1/jurisdictions/a/mode",
        json={"mode": "emergency", "level": "III", "reason": "storm"},
        headers=trainer,
    )
    assert r.status == 403, await r.text()
    r = await client.post(
        "/v1/people",
        json={**people[0], "id": "v-new", "name": "New"},
        headers=trainer,
    )
    assert r.status == 403, await r.text()
    r = await client.patch("/v1/people/v-ann", json={"name": "Changed"}, headers=trainer)
    assert r.status in (403, 404), await r.text()

    # A live assignment (an admin's pin): the trainer can neither answer nor cancel it.
    r = await client.post("/v1/incidents", json=incident, headers=admin)
    assert r.status == 201, await r.text()
    r = await client.post(
        "/v1/incidents/i-1/pins", json={"person": "v-ann", "skill": "first_aid"}, headers=admin
    )
    assert r.status == 201, await r.text()
    aid = (await r.json())["id"]
    for action in ("accept", "decline", "cancel"):
        r = await client.post(f"/v1/assignments/{aid}/{action}", headers=trainer)
        # Not the trainer's to see: 404 like any assignment outside the caller's reach.
        assert r.status in (403, 404), (action, await r.text())
    r = await client.get(f"/v1/assignments/{aid}", headers=admin)
    assert (await r.json())["status"] == "offered"
    r = await client.get("/v1/incidents", headers=trainer)
    assert r.status == 403


async def test_volunteer_and_observer_tokens_cannot_create_or_steer_drills(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    did = (await t.create(scenario=TINY))["id"]
    r = await client.post(
        "/v1/people",
        json={
            "id": "v-1",
            "kind": "volunteer",
            "name": "V",
            "jurisdiction": "a",
            "home": {"lat": 31.2, "lon": 121.4},
        },
        headers=bearer(admin_token),
    )
    assert r.status == 201, await r.text()
    volunteer = bearer(await make_token(db_dsn, "volunteer", person="v-1"))
    observer = bearer(await make_token(db_dsn, "observer", "c"))
    coordinator = bearer(await make_token(db_dsn, "coordinator", "c"))
    for h in (volunteer, observer, coordinator):
        r = await client.post("/v1/drills", json={"scenario": TINY}, headers=h)
        assert r.status == 403, await r.text()
        r = await client.post(f"/v1/drills/{did}/start", headers=h)
        assert r.status in (403, 404), await r.text()
    r = await client.get("/v1/drills", headers=volunteer)
    assert r.status == 403
    assert (await t.get(did))["status"] == "created"
    # Stopping a drill that never ran ends it at once, without a report.
    out = await t.act(did, "stop", status=200)
    assert out["status"] == "stopped" and not out["has_report"]
    r = await client.get(f"/v1/drills/{did}/report", headers=t.h)
    assert r.status == 409


async def test_malformed_scenario_is_a_422_naming_the_field_and_the_line(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    bad = TINY.replace("priority: 1\n", "priority: 9\n")
    r = await client.post("/v1/drills", json={"scenario": bad}, headers=t.h)
    assert r.status == 422
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    line = bad.splitlines().index("    priority: 9") + 1
    assert problem["scenario_issues"] == [
        {"field": "timeline[1].priority", "line": line, "msg": problem["scenario_issues"][0]["msg"]}
    ]
    assert problem["errors"][0]["loc"] == "/scenario"
    assert problem["errors"][0]["msg"].startswith(f"line {line}: timeline[1].priority:")

    r = await client.post("/v1/drills", json={"scenario": "name: [unclosed"}, headers=t.h)
    assert r.status == 422
    assert (await r.json())["scenario_issues"][0]["line"] == 1

    for body, loc in (
        ({"scenario": TINY, "speed": "fast"}, "/speed"),
        ({"bundled": "no_such_scenario"}, "/bundled"),
        ({"scenario": TINY, "bundled": "urban_flood"}, "/"),
        (
            {
                "scenario": TINY.replace(
                    "generated: {people: 60, seed: 2, districts: 1}", "file: /etc/passwd"
                )
            },
            "/scenario",
        ),
        ({"scenario": TINY, "participants": ["v-1"]}, "/participants"),
    ):
        r = await client.post("/v1/drills", json=body, headers=t.h)
        assert r.status == 422, (body, await r.text())
        locs = [e["loc"] for e in (await r.json())["errors"]]
        assert loc in locs, (body, locs)

    # Scenario text from the API reads no file on the server (a replayed CSV, a roster file).
    replay = TINY + (
        "replay:\n  file: ../../etc/passwd\n  columns: {at: a, lat: b, lon: c, type: d}\n"
        "  types: {X: {priority: 1}}\n"
    )
    r = await client.post("/v1/drills", json={"scenario": replay}, headers=t.h)
    assert r.status == 422, await r.text()
    assert [i["field"] for i in (await r.json())["scenario_issues"]] == ["replay.file"]

    # A bundled scenario by name is accepted as is, with the files it ships with.
    d = await t.create(bundled="urban_flood")
    assert d["name"] == "urban-flood" and d["source"] == "bundled:urban_flood"
    d = await t.create(bundled="replay_example")
    assert d["source"] == "bundled:replay_example"


async def test_scope_a_trainer_sees_and_snapshots_only_their_jurisdiction(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await create_jurisdictions(client, admin_token, TREE[:3])  # c, a and b
    city_trainer = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    a_trainer = Trainer(client, await make_token(db_dsn, "trainer", "a"))
    snapshot_c = TINY.replace(
        "generated: {people: 60, seed: 2, districts: 1}", "snapshot: {jurisdiction: c}"
    )
    r = await client.post("/v1/drills", json={"scenario": snapshot_c}, headers=a_trainer.h)
    assert r.status == 403, await r.text()
    snap = await city_trainer.create(scenario=snapshot_c)
    assert snap["scope"] == "c"
    mine = await a_trainer.create(
        scenario=TINY.replace(
            "generated: {people: 60, seed: 2, districts: 1}", "snapshot: {jurisdiction: a}"
        )
    )
    assert mine["scope"] == "a"
    # The district trainer cannot see or steer the city's drill; the city trainer sees both.
    r = await client.get(f"/v1/drills/{snap['id']}", headers=a_trainer.h)
    assert r.status == 404
    r = await client.post(f"/v1/drills/{snap['id']}/start", headers=a_trainer.h)
    assert r.status == 404
    r = await client.get("/v1/drills", headers=a_trainer.h)
    assert [x["id"] for x in (await r.json())["items"]] == [mine["id"]]
    r = await client.get("/v1/drills", headers=city_trainer.h)
    assert {x["id"] for x in (await r.json())["items"]} == {mine["id"], snap["id"]}
    r = await client.get("/v1/drills/d-unknown", headers=city_trainer.h)
    assert r.status == 404


async def test_at_start_up_drills_left_running_by_a_crashed_process_are_interrupted(
    client: Any, admin_token: str, db_dsn: str, settings: Settings
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    crashed = (await t.create(scenario=TINY))["id"]
    # A process that crashed mid-drill left its row running and its schema behind.
    con = await asyncpg.connect(db_dsn)
    try:
        schema = await con.fetchval(
            "UPDATE drills SET status = 'running', started_at = created_at, owner = 'gone'"
            " WHERE id = $1 RETURNING schema_name",
            crashed,
        )
        await con.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await con.close()
    # Meanwhile this instance runs a drill of its own (paced, so it is still running).
    alive = (await t.create(scenario=TINY, speed="x1"))["id"]
    await t.act(alive, "start")

    # Another instance starts: it interrupts the orphan, not the drill whose instance lives.
    async with TestClient(TestServer(create_app(settings))) as other:
        r = await other.get(f"/v1/drills/{crashed}", headers=t.h)
        got = await r.json()
        assert got["status"] == "interrupted" and got["ended_at"] is not None
        assert "stopped before it ended" in got["error"]
        r = await other.get(f"/v1/drills/{alive}", headers=t.h)
        assert (await r.json())["status"] == "running"
        # A trainer request that lands on the other instance reaches the owner through the
        # registry: the owner stops the drill within a tick.
        r = await other.post(f"/v1/drills/{alive}/stop", headers=t.h)
        assert r.status == 202, await r.text()
    stopped = await t.until(alive, lambda x: x["status"] == "stopped")
    assert stopped["has_report"]
    assert await drill_schemas(db_dsn) == []


async def test_shutdown_stops_running_drills_cleanly_with_a_partial_report(
    client: Any, admin_token: str, db_dsn: str, settings: Settings
) -> None:
    await city(client, admin_token)
    t = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    async with TestClient(TestServer(create_app(settings))) as other:
        on_other = Trainer(other, await make_token(db_dsn, "trainer", "c"))
        d = await on_other.create(scenario=TINY, speed="x1")
        started = await on_other.act(d["id"], "start")
        await on_other.until(d["id"], lambda x: sim(x) > sim(started))
    # That instance is gone; it stopped its drill on the way out.
    got = await t.get(d["id"])
    assert got["status"] == "stopped", got
    assert got["has_report"] and "shut down" in got["error"]
    r = await client.get(f"/v1/drills/{d['id']}/report", headers=t.h)
    assert "stopped_at_s" in await r.json()
