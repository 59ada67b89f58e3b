"""The reference client (``muster volunteer``, api/volunteer_client.py) against the real app,
through a TCP proxy that can cut connections and lose responses: it shows offers as they
arrive, resumes with its last id after a drop (each message once, in order), keeps that id in
its state file, and answers with an Idempotency-Key that survives retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from api.keys import POOL
from api.volunteer_client import AnswerRefused, VolunteerClient, describe
from dispatch.clock import ManualClock
from tests.delivery.conftest import WAIT_S, World, make_world
from tests.delivery.proxy import Proxy
from tests.delivery.test_streams import send_offers

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(eng_client: Any) -> AsyncIterator[Proxy]:
    """A proxy in front of the app under test."""
    server = eng_client.server
    p = await Proxy(server.host, server.port).start()
    try:
        yield p
    finally:
        await p.close()


class Reader:
    """Runs ``client.messages()`` in the background and collects what it yields."""

    def __init__(self, client: VolunteerClient) -> None:
        self.client = client
        self.got: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()  # notified on every message, and when the client ends
        self.ended = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for env in self.client.messages():
                async with self.arrived:
                    self.got.append(env)
                    self.arrived.notify_all()
        finally:
            async with self.arrived:
                self.ended = True
                self.arrived.notify_all()

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.got]

    async def until(self, n: int) -> list[dict[str, Any]]:
        """Wait until ``n`` messages in all arrived."""
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.got) >= n or self.ended), WAIT_S
            )
        if len(self.got) < n:
            await asyncio.wait_for(self.task, WAIT_S)  # surface the client's error
            raise AssertionError(f"the client ended after {len(self.got)} of {n} messages")
        return self.got

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def stream_requests(proxy: Proxy) -> list[tuple[str, dict[str, str]]]:
    return [(t, h) for m, t, h in proxy.requests() if m == "GET" and t.startswith("/v1/me/stream")]


async def test_client_shows_offers_as_they_arrive_and_keeps_its_position_across_restarts(
    eng_client: Any,
    admin_token: str,
    db_dsn: str,
    proxy: Proxy,
    tmp_path: Path,
    clock: ManualClock,
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    state = tmp_path / "ann.json"
    async with VolunteerClient(proxy.url + "/", w.tokens["v-ann"], state_file=state) as client:
        reader = Reader(client)
        await w.incident("i-a")
        offer = await w.pin("i-a", "v-ann")
        [env] = await reader.until(1)
        assert env["kind"] == "offer" and env["seq"] == 1
        assert env["payload"]["assignment"] == offer["id"]
        assert client.offers == {offer["id"]: env["payload"]}
        assert f"OFFER {offer['id']}" in describe(env)
        assert json.loads(state.read_text()) == {"last_seq": 1}
        await reader.stop()
    # The first connection asked for everything: no position was known yet.
    [(target, headers)] = stream_requests(proxy)
    assert "last-event-id" not in headers and "since" not in target

    # While the client is not running, two more messages are sent.
    await send_offers(eng_client, clock, "v-ann", 2)

    async with VolunteerClient(proxy.url, w.tokens["v-ann"], state_file=state) as client:
        assert client.last_seq == 1  # read back from the state file
        reader = Reader(client)
        got = await reader.until(2)
        assert reader.seqs == [2, 3]
        assert [e["payload"]["incident"] for e in got] == ["i-0", "i-1"]
        assert json.loads(state.read_text()) == {"last_seq": 3}
        await reader.stop()
    target, headers = stream_requests(proxy)[-1]
    assert headers["last-event-id"] == "1" and "since=1" in target
    assert os.listdir(tmp_path) == ["ann.json"]  # the state file is replaced atomically


async def test_client_resumes_after_a_dropped_connection_with_each_message_once_in_order(
    eng_client: Any, admin_token: str, db_dsn: str, proxy: Proxy, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    async with VolunteerClient(proxy.url, w.tokens["v-ann"], max_backoff_s=0.5) as client:
        reader = Reader(client)
        await send_offers(eng_client, clock, "v-ann", 1)
        await reader.until(1)

        proxy.down = True  # the network goes away: the stream breaks, reconnects fail
        proxy.drop()
        missed = await send_offers(eng_client, clock, "v-ann", 3)
        await send_offers(eng_client, clock, "v-bob", 2)  # someone else's
        assert len(reader.got) == 1
        proxy.down = False

        await reader.until(4)
        assert reader.seqs == [1, *missed] == [1, 2, 3, 4]
        [live] = await send_offers(eng_client, clock, "v-ann", 1)
        await reader.until(5)
        assert reader.seqs == [1, 2, 3, 4, live]  # nothing twice, nothing of v-bob's
        await reader.stop()
    target, headers = stream_requests(proxy)[-1]
    assert headers["last-event-id"] == "1" and "since=1" in target


async def test_client_drops_duplicates_when_an_intermediary_loses_its_position(
    eng_client: Any, admin_token: str, db_dsn: str, proxy: Proxy, clock: ManualClock
) -> None:
    """At-least-once delivery: a proxy strips Last-Event-ID and ?since=, so the server replays
    everything from the start; the client shows only what it had not seen."""
    w = await make_world(eng_client, admin_token, db_dsn)

    def strip_position(data: bytes) -> bytes:
        data = re.sub(rb"Last-Event-ID: \d+\r\n", b"", data, flags=re.I)
        return re.sub(rb"([?&])since=\d+", rb"\1since=0", data)

    proxy.rewrite = strip_position
    async with VolunteerClient(proxy.url, w.tokens["v-ann"], max_backoff_s=0.5) as client:
        reader = Reader(client)
        await send_offers(eng_client, clock, "v-ann", 2)
        await reader.until(2)
        proxy.drop()
        await send_offers(eng_client, clock, "v-ann", 1)
        await reader.until(3)
        [(_, headers)] = stream_requests(proxy)[-1:]
        assert "last-event-id" not in headers  # the server really replayed from 0
        [live] = await send_offers(eng_client, clock, "v-ann", 1)
        await reader.until(4)
        assert reader.seqs == [1, 2, 3, live]
        await reader.stop()


async def test_answers_carry_an_idempotency_key_and_a_lost_response_is_applied_once(
    eng_client: Any, admin_token: str, db_dsn: str, proxy: Proxy
) -> None:
    w: World = await make_world(eng_client, admin_token, db_dsn)
    await w.incident("i-a")
    await w.incident("i-b")
    await w.incident("i-c", street="b-1")
    ann_offer = await w.pin("i-a", "v-ann")
    bob_offer = await w.pin("i-b", "v-bob")
    cy_offer = await w.pin("i-c", "v-cy")

    async with VolunteerClient(proxy.url, w.tokens["v-ann"]) as ann:
        out = await ann.accept(ann_offer["id"])
        assert out["status"] == "accepted" and out["id"] == ann_offer["id"]
        out = await ann.report(ann_offer["id"], "en_route")
        assert out["status"] == "en_route"
        [open_one] = await ann.open_assignments()
        assert (open_one["id"], open_one["status"]) == (ann_offer["id"], "en_route")
    async with VolunteerClient(proxy.url, w.tokens["v-bob"]) as bob:
        out = await bob.decline(bob_offer["id"], "car broke down")
        assert out["status"] == "declined" and out["decline_reason"] == "car broke down"
        with pytest.raises(AnswerRefused) as refused:
            await bob.accept(bob_offer["id"])  # too late: already declined
        assert refused.value.status == 409
        with pytest.raises(AnswerRefused) as refused:
            await bob.accept(cy_offer["id"])  # someone else's: no leak of its existence
        assert refused.value.status == 404

    posts = [(t, h) for m, t, h in proxy.requests() if m == "POST"]
    keys = [h.get("idempotency-key") for _, h in posts]
    assert all(k and re.fullmatch(r"[0-9a-f]{32}", k) for k in keys), keys
    assert len(set(keys)) == len(keys)  # a new key per answer

    # The response to v-cy's accept is lost after the server applied it: the client retries
    # with the same key and gets the stored answer; the accept happened once.
    before = len(proxy.requests())
    proxy.lose_next_post_response = True
    async with VolunteerClient(proxy.url, w.tokens["v-cy"]) as cy:
        cy.retry_delay_s = 0.05
        out = await cy.accept(cy_offer["id"])
    assert out["status"] == "accepted"
    retried = [(t, h) for m, t, h in proxy.requests()[before:] if m == "POST"]
    assert [t for t, _ in retried] == [f"/v1/assignments/{cy_offer['id']}/accept"] * 2
    assert retried[0][1]["idempotency-key"] == retried[1][1]["idempotency-key"]
    actions = await eng_client.server.app[POOL].fetch(
        "SELECT action FROM audit_log WHERE object_type = 'assignment' AND object_id = $1",
        cy_offer["id"],
    )
    assert [r["action"] for r in actions] == ["pin", "accepted"]


async def _line(proc: asyncio.subprocess.Process, pattern: str) -> str:
    """The next stdout line matching ``pattern`` (within the deadline)."""
    assert proc.stdout is not None

    async def find() -> str:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            assert raw, "the client exited"
            if re.search(pattern, raw.decode()):
                return raw.decode()

    return await asyncio.wait_for(find(), WAIT_S)


async def _volunteer(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        "volunteer",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_muster_volunteer_command_shows_an_offer_and_accepts_it(
    eng_client: Any, admin_token: str, db_dsn: str, tmp_path: Path
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    url = str(eng_client.make_url("/"))
    state = tmp_path / "state.json"
    proc = await _volunteer("--url", url, "--token", w.tokens["v-ann"], "--state", str(state))
    assert proc.stdin is not None
    try:
        await w.incident("i-a")
        offer = await w.pin("i-a", "v-ann")
        line = await _line(proc, "OFFER")
        assert f"#1 OFFER {offer['id']}" in line and "first_aid at incident i-a" in line
        proc.stdin.write(f"accept {offer['id']}\n".encode())
        await _line(proc, f"accepted {offer['id']}")
        proc.stdin.write(b"list\n")
        assert "accepted first_aid at i-a" in await _line(proc, offer["id"])
        proc.stdin.write(b"quit\n")
        assert await asyncio.wait_for(proc.wait(), WAIT_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert json.loads(state.read_text()) == {"last_seq": 1}

    # A refused token ends the session with a message, instead of hanging on the prompt.
    bad = await _volunteer("--url", url, "--token", "mst_not-a-token")
    _, err = await asyncio.wait_for(bad.communicate(), WAIT_S)
    assert bad.returncode == 2
    assert "refused the token (401)" in err.decode()


def test_the_client_answers_a_drill_offer_at_the_link_it_carries() -> None:
    """Exercise offers of a live-participation drill are answered at the drill's routes."""
    from api.volunteer_client import VolunteerClient

    c = VolunteerClient(url="http://muster.test/", token="t")
    links = {
        "accept": "/v1/me/drills/d1/assignments/a-00000003/accept",
        "decline": "/v1/me/drills/d1/assignments/a-00000003/decline",
        "status": "/v1/me/drills/d1/assignments/a-00000003/status",
    }
    c._track(
        {
            "seq": 1,
            "kind": "offer",
            "exercise": True,
            "payload": {"assignment": "a-00000003", "links": links},
        }
    )
    c._track({"seq": 2, "kind": "offer", "payload": {"assignment": "a-live"}})
    assert c._answer_path("a-00000003", "decline") == links["decline"]
    assert c._answer_path("a-live", "accept") == "/v1/assignments/a-live/accept"
