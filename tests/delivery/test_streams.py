"""Real SSE and WebSocket connections to the real app: resume, live delivery, heartbeats,
fan-out between two instances, the coordinator stream, and shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.keys import ENGINE, POOL, STREAMS
from dispatch.clock import ManualClock
from dispatch.config import Settings
from dispatch.storage import engine as engine_store
from tests.conftest import bearer
from tests.delivery.conftest import (
    WAIT_S,
    make_world,
    open_sse,
)


async def send_offers(client: Any, clock: ManualClock, person: str, n: int) -> list[int]:
    """Offers written straight to the outbox (pure delivery semantics), one transaction each."""
    seqs = []
    async with client.server.app[POOL].acquire() as con:
        for k in range(n):
            async with con.transaction():
                seqs.append(
                    await engine_store.send(
                        con,
                        person,
                        "offer",
                        {"assignment": f"a-test{k}", "incident": f"i-{k}", "skill": "first_aid"},
                        now=clock.now(),
                        exercise=False,
                    )
                )
    return seqs


async def test_sse_resume_with_last_event_id_replays_exactly_the_missed_offers_in_order(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    [first] = await send_offers(eng_client, clock, "v-ann", 1)
    sse = await open_sse(eng_client, w.h("v-ann"))
    got = await sse.message()
    assert (got.id, got.event) == (str(first), "offer")
    env = got.json()
    assert env["seq"] == first and env["exercise"] is False
    assert env["created_at"] == clock.now().isoformat()
    assert set(env) == {"seq", "kind", "payload", "exercise", "created_at"}
    sse.close()

    missed = await send_offers(eng_client, clock, "v-ann", 3)
    await send_offers(eng_client, clock, "v-bob", 2)  # someone else's: must not show up

    sse = await open_sse(eng_client, {**w.h("v-ann"), "Last-Event-ID": got.id or ""})
    replayed = [await sse.message() for _ in missed]
    assert [int(e.id or 0) for e in replayed] == missed == [first + 1, first + 2, first + 3]
    assert [e.json()["payload"]["incident"] for e in replayed] == ["i-0", "i-1", "i-2"]
    await sse.nothing_more()

    # Live messages follow on the same connection, without a gap.
    [live] = await send_offers(eng_client, clock, "v-ann", 1)
    assert int((await sse.message()).id or 0) == live == missed[-1] + 1
    sse.close()

    # ?since= is the fallback when the header cannot be set.
    sse = await open_sse(eng_client, w.h("v-ann"), since=str(missed[1]))
    assert [int((await sse.message()).id or 0) for _ in range(2)] == [missed[2], live]
    await sse.nothing_more()
    sse.close()


async def test_offers_made_through_the_api_while_offline_arrive_after_reconnect(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    for iid in ("i-1", "i-2", "i-3"):
        await w.incident(iid)
    sse = await open_sse(eng_client, w.h("v-ann"))
    await sse.nothing_more()
    sse.close()

    # Three offers while disconnected: pin, cancel, pin, cancel, pin.
    offers = []
    for k, iid in enumerate(("i-1", "i-2", "i-3")):
        offers.append(await w.pin(iid, "v-ann"))
        if k < 2:
            await w.cancel(offers[-1]["id"])

    sse = await open_sse(eng_client, {**w.h("v-ann"), "Last-Event-ID": "0"})
    got = [(await sse.message()).json() for _ in range(5)]
    await sse.nothing_more()
    sse.close()
    assert [g["seq"] for g in got] == [1, 2, 3, 4, 5]
    assert [g["kind"] for g in got] == [
        "offer",
        "assignment_cancelled",
        "offer",
        "assignment_cancelled",
        "offer",
    ]
    received = [g["payload"]["assignment"] for g in got if g["kind"] == "offer"]
    assert received == [o["id"] for o in offers]
    assert [g["payload"]["incident"] for g in got if g["kind"] == "offer"] == ["i-1", "i-2", "i-3"]
    stored = await pool.fetch("SELECT seq, kind FROM outbox WHERE person_id = 'v-ann' ORDER BY seq")
    assert [(r["seq"], r["kind"]) for r in stored] == [(g["seq"], g["kind"]) for g in got]


async def test_websocket_resume_with_since_then_live_acks_and_bad_frames(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    first = await send_offers(eng_client, clock, "v-ann", 2)
    ws = await eng_client.ws_connect("/v1/me/ws", headers=w.h("v-ann"))
    got = [await asyncio.wait_for(ws.receive_json(), WAIT_S) for _ in first]
    assert [g["seq"] for g in got] == first
    await ws.send_json({"ack": first[-1]})
    await ws.close()

    missed = await send_offers(eng_client, clock, "v-ann", 3)
    ws = await eng_client.ws_connect(
        "/v1/me/ws", params={"since": str(first[-1])}, headers=w.h("v-ann")
    )
    got = [await asyncio.wait_for(ws.receive_json(), WAIT_S) for _ in missed]
    assert [g["seq"] for g in got] == missed
    assert all(g["kind"] == "offer" for g in got)

    # An unknown client message gets an error frame; the connection stays usable.
    await ws.send_str('{"hello": 1}')
    err = await asyncio.wait_for(ws.receive_json(), WAIT_S)
    assert "error" in err and "seq" not in err
    await ws.send_str("not json")
    assert "error" in await asyncio.wait_for(ws.receive_json(), WAIT_S)
    await ws.send_json({"ack": missed[-1]})
    [live] = await send_offers(eng_client, clock, "v-ann", 1)
    assert (await asyncio.wait_for(ws.receive_json(), WAIT_S))["seq"] == live == missed[-1] + 1

    # Client frames are handled one after another: the error answering the next frame means
    # the ack before it is stored.
    await ws.send_str('{"after": "the ack"}')
    assert "error" in await asyncio.wait_for(ws.receive_json(), WAIT_S)
    r = await eng_client.get("/v1/me", headers=w.h("v-ann"))
    assert (await r.json())["messages"]["last_acked_seq"] == missed[-1]
    await ws.close()
    stored = await pool.fetchval("SELECT last_acked_seq FROM delivery_acks WHERE person_id='v-ann'")
    assert stored == missed[-1]


async def test_replay_racing_live_messages_has_no_gap_and_no_duplicate(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    await send_offers(eng_client, clock, "v-ann", 20)
    sse = await open_sse(eng_client, w.h("v-ann"), since="5")
    producer = asyncio.create_task(send_offers(eng_client, clock, "v-ann", 40))
    seqs = [int((await sse.message()).id or 0) for _ in range(55)]
    await producer
    await sse.nothing_more()
    sse.close()
    assert seqs == list(range(6, 61))


async def test_a_message_produced_on_instance_a_reaches_a_client_on_instance_b(
    settings: Settings, clock: ManualClock, aiohttp_client: Any, admin_token: str, db_dsn: str
) -> None:
    a = await aiohttp_client(create_app(settings, clock=clock))
    b = await aiohttp_client(create_app(settings, clock=clock))
    w = await make_world(a, admin_token, db_dsn)
    await w.incident("i-1")
    sse = await open_sse(b, w.h("v-ann"))
    ws = await b.ws_connect("/v1/me/ws", headers=w.h("v-ann"))
    hub_b = b.server.app[STREAMS]
    await asyncio.wait_for(hub_b.until(lambda: hub_b.connections == 2), WAIT_S)
    offer = await w.pin("i-1", "v-ann")  # through instance A's API
    ev = await sse.message()
    assert ev.event == "offer" and ev.json()["payload"]["assignment"] == offer["id"]
    frame = await asyncio.wait_for(ws.receive_json(), WAIT_S)
    assert frame["seq"] == 1 and frame["payload"]["assignment"] == offer["id"]
    assert a.server.app[STREAMS].connections == 0
    sse.close()
    await ws.close()


async def test_an_idle_sse_connection_gets_heartbeats(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    for headers, path in ((w.h("v-ann"), "/v1/me/stream"), (w.h("coord"), "/v1/stream")):
        sse = await open_sse(eng_client, headers, path)
        for _ in range(3):
            ev = await sse.next(within=5)
            assert ev is not None and ev.comment == "ping" and ev.id is None
        sse.close()


async def test_the_coordinator_stream_shows_changes_in_scope_only(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    from tests.conftest import make_token

    w = await make_world(eng_client, admin_token, db_dsn)
    district_a = await make_token(db_dsn, "coordinator", "a")
    observer_a = await make_token(db_dsn, "observer", "a")
    sse = await open_sse(eng_client, bearer(district_a), "/v1/stream")
    obs = await open_sse(eng_client, bearer(observer_a), "/v1/stream")
    whole = await open_sse(eng_client, w.h("coord"), "/v1/stream")
    await _watchers(eng_client, 3)

    await w.incident("i-b", street="b-1")  # out of district A's scope
    await w.incident("i-a", street="a-1")
    offer = await w.pin("i-a", "v-ann")
    r = await eng_client.post(f"/v1/assignments/{offer['id']}/accept", headers=w.h("v-ann"))
    assert r.status == 200

    for reader in (sse, obs):
        seen = [(await reader.message()).json() for _ in range(3)]
        assert [(e["kind"], e["id"]) for e in seen] == [
            ("incident_created", "i-a"),
            ("assignment_status", offer["id"]),
            ("assignment_status", offer["id"]),
        ]
        assert seen[0]["summary"]["title"] == "Incident i-a"
        assert seen[0]["jurisdiction_path"].endswith("/a-1")
        assert [e["summary"]["status"] for e in seen[1:]] == ["offered", "accepted"]
        assert seen[2]["summary"]["previous_status"] == "offered"
        assert "contacts" not in str(seen) and "home" not in str(seen)
        await reader.nothing_more()  # i-b never shows up
        reader.close()
    everything = [(await whole.message()).json()["id"] for _ in range(4)]
    assert everything == ["i-b", "i-a", offer["id"], offer["id"]]
    whole.close()


async def _watchers(client: Any, n: int) -> None:
    """Wait until ``n`` coordinator streams are registered with the app's hub."""
    hub = client.server.app[STREAMS]
    await asyncio.wait_for(hub.until(lambda: hub.watchers == n), WAIT_S)


async def test_a_stored_plan_is_announced_once_with_its_counts(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    from datetime import timedelta

    from tests.delivery.conftest import emergency

    w = await make_world(eng_client, admin_token, db_dsn)
    await emergency(w)
    await w.incident("i-a", n=2)
    sse = await open_sse(eng_client, w.h("coord"), "/v1/stream")
    await _watchers(eng_client, 1)
    clock.advance(timedelta(seconds=2))
    report = await eng_client.server.app[ENGINE].run_due()
    assert report.plan_id is not None
    kinds = []
    while "plan_stored" not in kinds:
        ev = (await sse.message()).json()
        kinds.append(ev["kind"])
        if ev["kind"] == "plan_stored":
            assert ev["id"] == str(report.plan_id) and ev["jurisdiction_path"] is None
            assert ev["summary"]["offers_made"] == 2
    assert kinds.count("assignment_status") == 2
    await sse.nothing_more()
    sse.close()


async def test_shutdown_closes_websockets_with_going_away_and_ends_sse(
    settings: Settings, clock: ManualClock, admin_token: str, db_dsn: str
) -> None:
    server = TestServer(create_app(settings, clock=clock))
    client = TestClient(server)
    await client.start_server()
    try:
        w = await make_world(client, admin_token, db_dsn)
        await send_offers(client, clock, "v-ann", 1)
        ws = await client.ws_connect("/v1/me/ws", headers=w.h("v-ann"))
        assert (await asyncio.wait_for(ws.receive_json(), WAIT_S))["seq"] == 1
        sse = await open_sse(client, w.h("v-bob"))
        closing = asyncio.create_task(server.close())
        msg = await asyncio.wait_for(ws.receive(), WAIT_S)
        assert msg.type is WSMsgType.CLOSE
        assert ws.close_code == 1001
        assert await sse.next() is None  # the SSE response ended cleanly
        await asyncio.wait_for(closing, WAIT_S)
    finally:
        await client.close()


async def test_listener_reconnects_and_catches_up(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    hub = eng_client.server.app[STREAMS]
    sse = await open_sse(eng_client, w.h("v-ann"))
    # Kill the hub's LISTEN connection from the server side; messages sent meanwhile still come.
    admin = await asyncpg.connect(db_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'muster-streams' AND datname = current_database()"
        )
        assert killed == 1
    finally:
        await admin.close()
    await send_offers(eng_client, clock, "v-ann", 2)
    assert [int((await sse.message()).id or 0) for _ in range(2)] == [1, 2]
    await asyncio.wait_for(hub.listening.wait(), WAIT_S)
    sse.close()
