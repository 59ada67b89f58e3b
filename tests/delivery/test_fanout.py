"""Batched fan-out in the stream hub: the messages of one notification burst are read in one
query for every connected person, and each connection still gets its own messages exactly once,
in order, whatever its position — several connections of one person, a backlog larger than a
batch brings, a batch racing a connection's own replay."""

from __future__ import annotations

import asyncio
from typing import Any

from api.keys import POOL, STREAMS
from api.streams import FETCH_PER_PERSON
from dispatch.clock import ManualClock
from dispatch.storage import engine as engine_store
from tests.delivery.conftest import WAIT_S, make_world, open_sse
from tests.delivery.test_streams import send_offers


async def send_burst(client: Any, clock: ManualClock, people: list[str], tag: str) -> None:
    """One statement, one message per entry of ``people`` (repeats allowed)."""
    async with client.server.app[POOL].acquire() as con:
        await engine_store.send_many(
            con,
            "offer",
            [
                (p, {"assignment": f"a-{tag}{k}", "incident": f"i-{k}"})
                for k, p in enumerate(people)
            ],
            now=clock.now(),
            exercise=False,
        )


async def test_one_burst_is_read_in_one_query_and_reaches_every_connection_once(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    hub = eng_client.server.app[STREAMS]
    await send_offers(eng_client, clock, "v-ann", 3)
    # v-ann twice (phone caught up, laptop resuming from 1), v-bob and v-cy once.
    phone = await open_sse(eng_client, w.h("v-ann"))
    assert [int((await phone.message()).id or 0) for _ in range(3)] == [1, 2, 3]
    laptop = await open_sse(eng_client, w.h("v-ann"), since="1")
    assert [int((await laptop.message()).id or 0) for _ in range(2)] == [2, 3]
    bob = await open_sse(eng_client, w.h("v-bob"))
    cy = await open_sse(eng_client, w.h("v-cy"))

    await asyncio.wait_for(hub.until(lambda: hub.connections == 4), WAIT_S)
    before = hub.batches
    await send_burst(eng_client, clock, ["v-ann", "v-bob", "v-cy"], "burst")
    assert int((await phone.message()).id or 0) == 4
    assert int((await laptop.message()).id or 0) == 4
    assert (await bob.message()).json()["payload"]["assignment"] == "a-burst1"
    assert (await cy.message()).json()["payload"]["assignment"] == "a-burst2"
    assert hub.batches == before + 1
    for s in (phone, laptop, bob, cy):
        await s.nothing_more()
        s.close()


async def test_a_backlog_larger_than_a_batch_arrives_complete_and_in_order(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    sse = await open_sse(eng_client, w.h("v-ann"))
    hub = eng_client.server.app[STREAMS]

    await asyncio.wait_for(hub.until(lambda: hub.connections == 1), WAIT_S)
    n = 2 * FETCH_PER_PERSON + 7
    await send_burst(eng_client, clock, ["v-ann"] * n, "many")
    got = [int((await sse.message()).id or 0) for _ in range(n)]
    assert got == list(range(1, n + 1))
    await sse.nothing_more()
    sse.close()


async def test_messages_sent_while_a_connection_replays_arrive_once_in_order(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    """Live bursts land while the connection is still sending its replay: the batched reads
    and the connection's own reads overlap, and nothing is doubled or skipped."""
    w = await make_world(eng_client, admin_token, db_dsn)
    await send_offers(eng_client, clock, "v-ann", 5)
    sse = await open_sse(eng_client, w.h("v-ann"))
    for k in range(5):
        await send_burst(eng_client, clock, ["v-ann", "v-bob"], f"r{k}")
    got = [int((await sse.message()).id or 0) for _ in range(10)]
    assert got == list(range(1, 11))
    await sse.nothing_more()
    sse.close()


async def test_a_batch_serves_each_connection_of_a_person_from_its_own_position(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    """Two connections of one person, one further behind (a slow phone): the batch reads from
    the lower position and each connection queues only what it has not got, once."""
    await make_world(eng_client, admin_token, db_dsn)
    hub = eng_client.server.app[STREAMS]
    await send_offers(eng_client, clock, "v-ann", 3)
    behind, ahead = hub.connect("v-ann"), hub.connect("v-ann")
    try:
        behind.known, ahead.known = 1, 3
        behind.stale = ahead.stale = False  # as if both had read up to there themselves
        await send_offers(eng_client, clock, "v-ann", 2)  # 4 and 5, notified to the hub

        await asyncio.wait_for(hub.until(lambda: [e["seq"] for e in ahead.inbox] == [4, 5]), WAIT_S)
        await hub._fetch(["v-ann"])  # a second read of the same burst changes nothing
        assert [e["seq"] for e in behind.inbox] == [2, 3, 4, 5]
        assert [e["seq"] for e in ahead.inbox] == [4, 5]
        assert (behind.known, ahead.known) == (5, 5)
    finally:
        hub.disconnect(behind)
        hub.disconnect(ahead)
