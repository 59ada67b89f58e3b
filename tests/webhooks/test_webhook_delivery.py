"""Webhook delivery over real HTTP to local receivers; time moved by a ManualClock and the
dispatcher driven with ``run_due`` (nothing waits on wall time)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from api.app import create_app
from api.keys import POOL, WEBHOOKS
from dispatch.clock import ManualClock, SystemClock
from dispatch.config import Settings
from dispatch.services.webhook_dispatcher import (
    DispatcherConfig,
    WebhookDispatcher,
    webhook_service,
)
from dispatch.storage import engine as engine_store
from tests.conftest import bearer
from tests.webhooks import (
    build_tree,
    deliveries,
    documented_verifier,
    receiver,
    register,
    send,
)

START = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
BASE_S = 2.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest_asyncio.fixture(loop_scope="session")
async def wh(
    settings: Settings, clock: ManualClock, aiohttp_client: Any, admin_token: str, db_dsn: str
) -> Any:
    """The app with an injected clock (dispatcher not running by itself) and a city."""
    s = replace(
        settings, webhook_backoff_base_s=BASE_S, webhook_max_attempts=4, webhook_timeout_s=5.0
    )
    client = await aiohttp_client(create_app(s, clock=clock))
    await build_tree(client, admin_token, db_dsn)
    return client


def dispatcher(client: Any) -> WebhookDispatcher:
    d: WebhookDispatcher = client.server.app[WEBHOOKS]
    return d


def pool(client: Any) -> Any:
    return client.server.app[POOL]


async def test_delivery_is_signed_with_the_documented_scheme_and_a_tampered_body_fails(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    verify = documented_verifier()
    async with receiver() as rec:
        ep = await register(wh, admin_token, url=rec.url, jurisdiction="c")
        seq = await send(pool(wh), "pa", "offer", {"assignment": "a-1"}, now=clock.now())
        assert await dispatcher(wh).run_due() == 1

    assert len(rec.hits) == 1
    hit = rec.hits[0]
    sig = hit.headers["X-Muster-Signature"]
    t = int(sig.split(",")[0].removeprefix("t="))
    assert t == int(clock.now().timestamp())
    assert verify(ep["secret"], sig, hit.body, now=t)
    assert not verify(ep["secret"], sig, hit.body.replace(b'"a-1"', b'"a-2"'), now=t)
    assert not verify("whsec_wrong", sig, hit.body, now=t)
    assert not verify(ep["secret"], sig, hit.body, now=t + 301), "outside the replay window"

    body = json.loads(hit.body)
    assert body == {
        "seq": seq,
        "kind": "offer",
        "person": "pa",
        "payload": {"assignment": "a-1"},
        "exercise": False,
        "created_at": START.isoformat(),
        "delivery": hit.headers["X-Muster-Delivery"],
    }
    assert hit.headers["X-Muster-Event"] == "offer"
    assert hit.headers["X-Muster-Exercise"] == "false"
    assert hit.headers["Content-Type"] == "application/json"


async def test_rotated_secret_with_grace_signs_with_both_secrets(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    verify = documented_verifier()
    async with receiver() as rec:
        ep = await register(wh, admin_token, url=rec.url, jurisdiction="c")
        r = await wh.post(
            f"/v1/webhooks/{ep['id']}/rotate-secret",
            json={"grace_seconds": 60},
            headers=bearer(admin_token),
        )
        assert r.status == 200, await r.text()
        new_secret = (await r.json())["secret"]
        assert new_secret != ep["secret"]
        await send(pool(wh), "pa", "offer", {}, now=clock.now())
        await dispatcher(wh).run_due()
        clock.advance(timedelta(seconds=61))  # grace over: only the new secret signs
        await send(pool(wh), "pa", "offer", {}, now=clock.now())
        await dispatcher(wh).run_due()

    first, second = rec.hits
    t1 = int(clock.now().timestamp()) - 61
    assert first.headers["X-Muster-Signature"].count("v1=") == 2
    assert verify(new_secret, first.headers["X-Muster-Signature"], first.body, now=t1)
    assert verify(ep["secret"], first.headers["X-Muster-Signature"], first.body, now=t1)
    t2 = int(clock.now().timestamp())
    assert verify(new_secret, second.headers["X-Muster-Signature"], second.body, now=t2)
    assert not verify(ep["secret"], second.headers["X-Muster-Signature"], second.body, now=t2)


async def test_receiver_failing_twice_then_succeeding_gets_the_message_acknowledged_once(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    d = dispatcher(wh)
    async with receiver(script=[500, 500]) as rec:
        ep = await register(wh, admin_token, url=rec.url, jurisdiction="a")
        await send(pool(wh), "pa", "offer", {"assignment": "a-9"}, now=clock.now())

        waits = []
        for attempt in (1, 2):
            assert await d.run_due() == 1
            [item] = await deliveries(wh, admin_token, ep["id"])
            assert (item["status"], item["attempts"]) == ("pending", attempt)
            assert item["last_status_code"] == 500
            due = datetime.fromisoformat(item["next_attempt_at"])
            assert await d.next_due() == due, "the due time is a row"
            assert await d.run_due() == 0, "not due before its time"
            waits.append((due - clock.now()).total_seconds())
            clock.set(due)
        assert await d.run_due() == 1
        delivered_at = clock.now()
        clock.advance(timedelta(hours=1))
        assert await d.run_due() == 0

    # The schedule: after failure k the wait lies in [base·2^(k-1)/2, base·2^(k-1)].
    assert BASE_S / 2 <= waits[0] <= BASE_S
    assert BASE_S <= waits[1] <= 2 * BASE_S
    assert waits[0] <= waits[1]
    assert [h.answered for h in rec.hits] == [500, 500, 200]
    assert len(set(rec.delivery_ids())) == 1, "one delivery id across retries"
    assert [h.headers["X-Muster-Attempt"] for h in rec.hits] == ["1", "2", "3"]
    assert len(rec.acknowledged()) == 1
    [item] = await deliveries(wh, admin_token, ep["id"])
    assert (item["status"], item["attempts"], item["last_status_code"]) == ("delivered", 3, 200)
    assert datetime.fromisoformat(item["delivered_at"]) == delivered_at
    assert await d.next_due() is None


async def test_always_failing_receiver_is_dead_lettered_and_replay_delivers_after_recovery(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    d = dispatcher(wh)
    h = bearer(admin_token)
    async with receiver(default=503) as rec:
        ep = await register(wh, admin_token, url=rec.url, jurisdiction="c", kinds=["offer"])
        await send(pool(wh), "pa", "offer", {"n": 1}, now=clock.now())
        await send(pool(wh), "pb", "offer", {"n": 2}, now=clock.now())
        passes = 0
        while (due := await d.next_due()) is not None and passes < 20:
            clock.set(max(due, clock.now()))
            await d.run_due()
            passes += 1
        assert await d.next_due() is None, "nothing left to send"
        assert len(rec.hits) == 8

        dead = await deliveries(wh, admin_token, ep["id"], status="dead")
        assert len(dead) == 2
        assert {(x["attempts"], x["last_status_code"]) for x in dead} == {(4, 503)}
        assert all(x["dead_at"] is not None for x in dead)
        r = await wh.get(f"/v1/webhooks/{ep['id']}", headers=h)
        assert (await r.json())["deliveries"] == {"pending": 0, "delivered": 0, "dead": 2}

        # The gateway recovers; one dead delivery is replayed, then the rest.
        rec.default = 200
        first = dead[0]["id"]
        r = await wh.post(f"/v1/webhooks/{ep['id']}/deliveries/{first}/replay", headers=h)
        assert r.status == 200, await r.text()
        out = await r.json()
        assert (out["status"], out["attempts"]) == ("pending", 0)
        r = await wh.post(f"/v1/webhooks/{ep['id']}/deliveries/{first}/replay", headers=h)
        assert r.status == 409, "only dead deliveries can be replayed"
        assert await d.run_due() == 1
        r = await wh.post(f"/v1/webhooks/{ep['id']}/replay-dead", headers=h)
        assert (await r.json()) == {"replayed": 1}
        assert await d.run_due() == 1

    assert [h.answered for h in rec.hits[8:]] == [200, 200]
    ids = [x["id"] for x in dead]
    assert rec.delivery_ids()[8:] == ids, "replays keep their delivery ids"
    assert await deliveries(wh, admin_token, ep["id"], status="dead") == []
    done = await deliveries(wh, admin_token, ep["id"], status="delivered")
    assert {x["id"] for x in done} == set(ids)


async def test_unreachable_endpoint_costs_one_connection_attempt_per_pass(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ep = await register(wh, admin_token, url=f"http://127.0.0.1:{port}/x", jurisdiction="c")
    for k in range(3):
        await send(pool(wh), "pa", "offer", {"k": k}, now=clock.now())
    assert await dispatcher(wh).run_due() == 3
    items = await deliveries(wh, admin_token, ep["id"])
    assert [x["attempts"] for x in items] == [1, 1, 1]
    assert all(x["status"] == "pending" and x["last_status_code"] is None for x in items)
    assert "unreachable" not in items[0]["last_error"]
    assert all("unreachable in this pass" in x["last_error"] for x in items[1:])


async def test_messages_outside_the_jurisdiction_or_kinds_are_not_sent(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    async with receiver() as only_a, receiver() as everything, receiver() as off:
        await register(wh, admin_token, url=only_a.url, jurisdiction="a", kinds=["offer"])
        await register(wh, admin_token, url=everything.url, jurisdiction="c")
        await register(wh, admin_token, url=off.url, jurisdiction="c", enabled=False)
        now = clock.now()
        async with pool(wh).acquire() as con, con.transaction():
            await engine_store.send_many(
                con,
                "offer",
                [("pa", {"i": 1}), ("pb", {"i": 2}), ("pa2", {"i": 3})],
                now=now,
                exercise=False,
            )
            await engine_store.send(con, "pa", "released", {"i": 4}, now=now, exercise=False)
        assert await dispatcher(wh).run_due() == 2 + 4

    def got(rec: Any) -> list[tuple[str, str, int]]:
        return sorted(
            (b["person"], b["kind"], b["payload"]["i"])
            for b in (json.loads(h.body) for h in rec.hits)
        )

    assert got(only_a) == [("pa", "offer", 1), ("pa2", "offer", 3)]
    assert got(everything) == [
        ("pa", "offer", 1),
        ("pa", "released", 4),
        ("pa2", "offer", 3),
        ("pb", "offer", 2),
    ]
    assert off.hits == []


async def test_exercise_messages_carry_the_flag_and_the_header(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    async with receiver() as rec:
        await register(wh, admin_token, url=rec.url, jurisdiction="c")
        await send(pool(wh), "pa", "offer", {"drill": 1}, now=clock.now(), exercise=True)
        await send(pool(wh), "pa", "offer", {"drill": 0}, now=clock.now(), exercise=False)
        await dispatcher(wh).run_due()
    drill, real = rec.hits
    assert json.loads(drill.body)["exercise"] is True
    assert drill.headers["X-Muster-Exercise"] == "true"
    assert json.loads(real.body)["exercise"] is False
    assert real.headers["X-Muster-Exercise"] == "false"


async def test_two_dispatchers_running_concurrently_do_not_double_send(
    wh: Any, admin_token: str, clock: ManualClock
) -> None:
    n = 30
    async with receiver() as r1, receiver() as r2, receiver() as r3:
        for rec in (r1, r2, r3):
            await register(wh, admin_token, url=rec.url, jurisdiction="c")
        async with pool(wh).acquire() as con, con.transaction():
            for k in range(n):
                await engine_store.send(
                    con, "pa", "offer", {"k": k}, now=clock.now(), exercise=False
                )
        config = DispatcherConfig(timeout_s=5.0, concurrency=2, batch=4)
        async with aiohttp.ClientSession() as s1, aiohttp.ClientSession() as s2:
            a = WebhookDispatcher(pool(wh), clock, s1, config=config)
            b = WebhookDispatcher(pool(wh), clock, s2, config=config)
            counts = await asyncio.gather(a.run_due(), b.run_due(), a.run_due())
    assert sum(counts) == 3 * n
    for rec in (r1, r2, r3):
        assert len(rec.hits) == n
        assert len(set(rec.delivery_ids())) == n, "no delivery sent twice"
        seqs = [json.loads(h.body)["seq"] for h in rec.hits]
        assert seqs == sorted(seqs), "one endpoint's messages go out in order"
    async with pool(wh).acquire() as con:
        states = await con.fetch("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
        leases = await con.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE lease_owner IS NOT NULL"
        )
    assert {r["status"]: r["count"] for r in states} == {"delivered": 3 * n}
    assert leases == 0


async def test_live_dispatcher_delivers_on_its_own_after_notify(
    pool: Any, db_dsn: str, settings: Settings, admin_token: str, aiohttp_client: Any
) -> None:
    """Wall clock, background runner: a new message reaches the receiver without run_due."""
    client = await aiohttp_client(create_app(settings))
    await build_tree(client, admin_token, db_dsn)
    async with receiver() as rec:
        await register(client, admin_token, url=rec.url, jurisdiction="c")
        s = replace(settings, webhook_poll_s=60.0)  # the NOTIFY must do it, not the poll
        async with webhook_service(pool, SystemClock(), db_dsn, s, live=True):
            await send(pool, "pa", "offer", {"live": True}, now=SystemClock().now())
            await asyncio.wait_for(rec.arrived.wait(), 10)
    assert len(rec.hits) == 1
    assert json.loads(rec.hits[0].body)["payload"] == {"live": True}
