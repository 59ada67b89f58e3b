"""Live-participation drills end to end: a real volunteer connected to ``/v1/me/stream`` receives
an exercise-marked offer from a running drill, answers it through the API, and the drill's
records and report show it; nobody else can answer it; live tables other than the outbox stay
untouched."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from tests.conftest import bearer, make_token
from tests.delivery.conftest import PEOPLE, open_sse
from tests.drills import Trainer, live_rows, poll
from tests.engine.conftest import build_city

LIVE = """\
name: live-exercise
description: a real volunteer of street A1 takes part
start: 2026-07-18T14:00:00+08:00
duration: "+01:00:00"
seed: 1
roster:
  snapshot: {jurisdiction: c}
engine: {solve_time_limit_s: 0.5, debounce_s: 1.0}
timeline:
  - {at: "+00:00:00", type: mode_changed, jurisdiction: a, mode: emergency, level: III}
  - at: "+00:00:05"
    type: incident_reported
    id: x1
    title: Fall at home
    jurisdiction: a-1
    location: {lat: 31.231, lon: 121.469}
    priority: 1
    demands: [{skill: first_aid, count: 1}]
"""

# What a live-participation drill may change in the live schema: the outbox (and its counters),
# the drill registry, the audit log of the trainer's actions, idempotency keys and token use.
ALLOWED = {
    "outbox",
    "outbox_counters",
    "drills",
    "drill_participants",
    "audit_log",
    "idempotency_keys",
    "api_tokens",
}


async def test_a_participant_gets_an_exercise_offer_on_their_stream_and_answers_it_for_real(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_city(client, admin_token, PEOPLE)
    trainer = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    ann = bearer(await make_token(db_dsn, "volunteer", person="v-ann"))
    bob = bearer(await make_token(db_dsn, "volunteer", person="v-bob"))
    cy = bearer(await make_token(db_dsn, "volunteer", person="v-cy"))

    d = await trainer.create(scenario=LIVE, speed="x10", participants=["v-ann", "v-bob"])
    assert d["participants"] == ["v-ann", "v-bob"]
    did = d["id"]
    before = await live_rows(db_dsn, skip=ALLOWED)
    assert before["people"] and not before["assignments"]

    sse = await open_sse(client, ann)
    await trainer.act(did, "start")
    r = await client.get("/v1/me/drills", headers=ann)
    assert [x["id"] for x in (await r.json())["items"]] == [did]
    r = await client.get("/v1/me/drills", headers=cy)
    assert (await r.json())["items"] == []

    msg = await sse.message(within=30)
    assert msg.event == "offer"
    env = msg.json()
    assert env["exercise"] is True and env["seq"] == 1
    offer = env["payload"]
    assert offer["drill"]["id"] == did and offer["drill"]["name"] == "live-exercise"
    aid = offer["assignment"]
    assert offer["drill"]["assignment"] == aid and offer["incident"] == "x1"
    assert offer["skill"] == "first_aid" and offer["drill"]["answer_by"]
    accept = f"/v1/me/drills/{did}/assignments/{aid}/accept"
    assert offer["links"]["accept"] == accept

    # Nobody else can answer it: another participant, a non-participant, the live endpoint.
    r = await client.post(accept, headers=bob)
    assert r.status == 404, await r.text()
    r = await client.post(accept, headers=cy)
    assert r.status == 404, await r.text()
    r = await client.post(f"/v1/assignments/{aid}/accept", headers=ann)
    assert r.status == 404, await r.text()

    # Only while the drill runs.
    await trainer.act(did, "pause")
    r = await client.post(accept, headers=ann)
    assert r.status == 409, await r.text()
    await trainer.act(did, "resume")

    key = {"Idempotency-Key": "ann-accept-1"}
    r = await client.post(accept, headers={**ann, **key})
    assert r.status == 200, await r.text()
    accepted = await r.json()
    assert accepted["status"] == "accepted" and accepted["exercise"] is True
    assert accepted["person"] == "v-ann" and accepted["drill"] == did
    again = await client.post(accept, headers={**ann, **key})
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == accepted
    r = await client.post(accept, headers=ann)  # a new request: the offer is no longer open
    assert r.status == 409, await r.text()

    r = await client.get(f"/v1/me/drills/{did}/assignments", headers=ann)
    mine = (await r.json())["items"]
    assert [(a["id"], a["status"]) for a in mine] == [(aid, "accepted")]
    r = await client.get(f"/v1/me/drills/{did}/assignments", headers=cy)
    assert r.status == 404

    # The simulated responders never answer for a participant: v-ann's acceptance is hers.
    await trainer.act(did, "stop", status=202)
    await trainer.until(did, lambda x: x["status"] == "stopped")
    ended = await sse.message(within=30)
    while ended.event != "drill_ended":
        ended = await sse.message(within=30)
    assert ended.json()["exercise"] is True
    assert ended.json()["payload"]["drill"] == {
        "id": did,
        "name": "live-exercise",
        "status": "stopped",
    }
    sse.close()

    r = await client.get(f"/v1/drills/{did}/report", headers=trainer.h)
    report = await r.json()
    part = report["participants"]["v-ann"]
    assert part["offers"] == 1 and part["accepted"] == 1
    [a] = part["assignments"]
    assert a["assignment"] == aid and a["status"] == "accepted" and a["answer_s"] > 0
    assert report["offers"]["accepted"] >= 1

    # Live: only exercise-marked outbox messages were added; every other live table is as it was.
    assert await live_rows(db_dsn, skip=ALLOWED) == before
    con = await asyncpg.connect(db_dsn)
    try:
        rows = await con.fetch("SELECT person_id, kind, exercise, payload FROM outbox ORDER BY id")
    finally:
        await con.close()
    assert rows and all(r["exercise"] for r in rows)
    assert all(json.loads(r["payload"])["drill"]["id"] == did for r in rows)
    assert {r["person_id"] for r in rows} <= {"v-ann", "v-bob"}


async def test_live_participants_need_a_snapshot_a_paced_speed_and_people_in_scope(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_city(client, admin_token, PEOPLE)
    a_trainer = Trainer(client, await make_token(db_dsn, "trainer", "a"))
    snap_a = LIVE.replace("snapshot: {jurisdiction: c}", "snapshot: {jurisdiction: a}")
    generated = LIVE.replace(
        "snapshot: {jurisdiction: c}", "generated: {people: 60, seed: 2, districts: 1}"
    )
    cases = [
        ({"scenario": snap_a, "participants": ["v-ann"]}, "/speed"),  # max by default
        ({"scenario": snap_a, "participants": ["v-ann"], "speed": "x5"}, 201),
        ({"scenario": snap_a, "participants": ["v-ann"], "speed": "max"}, "/speed"),
        ({"scenario": generated, "participants": ["v-ann"], "speed": "x5"}, "/participants"),
        # v-cy lives in district B: outside the snapshot and the trainer's scope.
        ({"scenario": snap_a, "participants": ["v-ann", "v-cy"], "speed": "x5"}, "/participants/1"),
        ({"scenario": snap_a, "participants": ["nobody"], "speed": "x5"}, "/participants/0"),
    ]
    for body, expect in cases:
        r = await client.post("/v1/drills", json=body, headers=a_trainer.h)
        if expect == 201:
            assert r.status == 201, await r.text()
            continue
        assert r.status == 422, (body, await r.text())
        locs = [e["loc"] for e in (await r.json())["errors"]]
        assert expect in locs, (body, locs)


async def test_a_participant_declines_and_the_drill_replans_around_them(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_city(client, admin_token, PEOPLE)
    trainer = Trainer(client, await make_token(db_dsn, "trainer", "c"))
    ann = bearer(await make_token(db_dsn, "volunteer", person="v-ann"))
    did = (await trainer.create(scenario=LIVE, speed="x10", participants=["v-ann"]))["id"]
    sse = await open_sse(client, ann)
    await trainer.act(did, "start")
    offer = (await sse.message(within=30)).json()["payload"]
    r = await client.post(offer["links"]["decline"], json={"reason": "at work"}, headers=ann)
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "declined"

    # The decline wakes the drill loop: the gap is re-planned and a simulated colleague (v-bob,
    # not a participant) gets an offer inside the drill, which never reaches a live stream.
    async def offers() -> list[str]:
        con = await asyncpg.connect(db_dsn)
        try:
            schema = await con.fetchval("SELECT schema_name FROM drills WHERE id = $1", did)
            rows = await con.fetch(
                f'SELECT person_id FROM "{schema}".assignments WHERE offered_at IS NOT NULL'
            )
            return sorted(r["person_id"] for r in rows)
        finally:
            await con.close()

    got = await poll(offers, lambda v: len(v) >= 2, within=30)
    assert got[0] == "v-ann" and "v-bob" in got
    await trainer.act(did, "stop", status=202)
    await trainer.until(did, lambda x: x["status"] == "stopped")
    sse.close()
    r = await client.get(f"/v1/drills/{did}/report", headers=trainer.h)
    part = (await r.json())["participants"]["v-ann"]
    assert part["declined"] == 1 and part["assignments"][0]["decline_reason"] == "at work"
