"""Real-time delivery: the per-app :class:`StreamHub` and the wire protocol of the streams.

Protocol (clients are built against this; keep it stable)
=========================================================

Message envelope
    Every message to a volunteer is one JSON object::

        {"seq": 17, "kind": "offer", "payload": {...}, "exercise": false,
         "created_at": "2026-07-14T09:00:02+00:00"}

    ``seq`` is the recipient's own sequence number (1, 2, 3, ... per person, assigned in the
    outbox by the database). Kinds today: ``offer``, ``offer_withdrawn``, ``offer_expired``,
    ``assignment_cancelled``, ``released``, ``drill_ended``; clients must ignore kinds they do
    not know. ``exercise`` marks drill messages. Messages of a live-participation drill also
    carry ``payload.drill`` (``id``, ``name``, ``assignment``, ``simulated_at``, ``answer_by``
    in real time) and, on offers, ``payload.links`` (``accept``, ``decline``, ``status``: the
    drill's routes to answer at, ``/v1/me/drills/{drill}/assignments/{id}/...``). Delivery is at-least-once across connections: a client
    remembers the highest ``seq`` it processed and drops anything at or below it. Within one
    connection messages arrive in ``seq`` order with no gap and no duplicate.

SSE: ``GET /v1/me/stream`` (volunteer token, ``Authorization: Bearer``)
    ``Content-Type: text/event-stream``. The stream starts with ``retry: 3000``. Each message::

        id: <seq>
        event: <kind>
        data: <envelope JSON on one line>
        <blank line>

    Resume with the ``Last-Event-ID: N`` header (what EventSource sends by itself), or with
    ``?since=N`` when the header cannot be set; the header wins when both are given. Every
    stored message with ``seq > N`` is replayed in order, then live ones follow on the same
    connection. Without either, the stream starts at the first message ever sent (``N = 0``).
    Idle connections get a comment ``: ping`` every ``MUSTER_HEARTBEAT_S`` seconds (default 15).
    On server shutdown the response simply ends; reconnect with the last id.

WebSocket: ``GET /v1/me/ws?since=N`` (volunteer token, ``Authorization: Bearer``)
    The server sends each envelope as one text frame, replaying ``seq > N`` first exactly as
    SSE does (``Last-Event-ID`` is accepted too). Keep-alive uses WebSocket ping/pong every
    heartbeat interval. The client may send ``{"ack": N}``: the server records the highest
    acknowledged ``seq`` per person (visible in ``GET /v1/me`` as ``messages.last_acked_seq``;
    for observability only, delivery never waits for acks). Any other client frame gets an
    error frame ``{"error": "..."}`` (no ``seq``) and the connection stays open. On server
    shutdown the socket is closed with code 1001 (GOING_AWAY); reconnect with ``since``.

Browser clients: ``?access_token=<token>``
    ``EventSource`` and ``WebSocket`` cannot set an ``Authorization`` header, so these three
    stream routes (and no other) also accept the token as ``?access_token=`` on the GET that
    opens them; a header, when sent, wins. The app redacts the value from its own logs
    (aiohttp's access log included), but proxies on the way may log URLs: give browsers
    tokens that can be revoked on their own.

Plain replay: ``GET /v1/me/messages?since=N&limit=L``
    ``{"items": [envelopes], "next": M|null}``; pass ``M`` as ``since`` for the next page.

Coordinator stream: ``GET /v1/stream`` (admin, coordinator, observer; SSE)
    Changes inside the caller's jurisdiction scope, as ``event: <kind>`` with ``data:``
    ``{"kind", "id", "jurisdiction_path", "summary"}``. Kinds: ``incident_created``,
    ``incident_updated``, ``incident_status`` (summary: jurisdiction, type, title, priority,
    status, previous_status, version), ``assignment_status`` (new offers and every status
    change; summary: incident, person, skill, status, previous_status) and ``plan_stored``
    (``jurisdiction_path`` null: plans span jurisdictions, so every caller sees the summary of
    counts). No personal data. There is **no resume** on this stream (no ``id:`` lines): a
    dashboard that reconnects reloads its state through the REST API. Heartbeats as above.
    A client too slow to keep up receives ``event: overflow`` and the stream ends.

Fan-out across instances
========================
Triggers (migration 0006) notify at commit: ``muster_outbox`` carries the distinct person ids
of a statement (≤ 100 a notification), ``muster_events`` the coordinator events. Each app
instance holds exactly one LISTEN connection (this hub); a notification only names people, and
the messages themselves are always read from the outbox, so nothing depends on a
notification's content.

Reading is batched: the people named by a burst of notifications (one plan offering to 5,000
volunteers sends 50 of them) are marked *dirty*, and one fetcher task reads the new messages of
all dirty people connected here in one query (``seq > position`` per person, a few per person
at most), then hands each connection its part. A connection reads the outbox itself only when
it starts (the replay after ``Last-Event-ID``) or when it is far behind.

Why no message is skipped or repeated on a connection: each connection keeps ``known``, the
highest ``seq`` it has sent or queued, and takes from any read only messages above it, in
order. Every read asks for ``seq > p`` with ``p ≤ known``, and for one person messages become
visible in ``seq`` order (the counter row is locked until commit), so whatever a read returns
above ``known`` starts at ``known + 1`` without a gap — whether it came from the connection's
own read or from the fetcher, in whatever order they finish. After the LISTEN connection is
lost and re-established every connected person is marked dirty, which covers notifications
missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import WSCloseCode, web

from dispatch.access import Principal
from dispatch.delivery import event_visible, public_event
from dispatch.storage import outbox

log = logging.getLogger("muster.streams")

OUTBOX_CHANNEL = "muster_outbox"
EVENTS_CHANNEL = "muster_events"
#: Coordinator events buffered per connection before it counts as too slow.
EVENT_BUFFER = 1000


#: People read in one fetcher query; messages per person in it (more: the connection pages).
FETCH_PEOPLE = 2000
FETCH_PER_PERSON = 50


@dataclass(eq=False)
class Recipient:
    """One open volunteer connection (a person may have several: phone and terminal).

    ``known`` is the highest ``seq`` sent or queued in ``inbox``; ``stale`` asks the connection
    to read the outbox itself (at the start, and when a batch did not bring everything).
    """

    person_id: str
    known: int = 0
    stale: bool = True
    inbox: list[dict[str, Any]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, envelopes: list[dict[str, Any]]) -> bool:
        """Queue the envelopes above ``known`` (given in ``seq`` order); whether any were new."""
        new = False
        for env in envelopes:
            if env["seq"] > self.known:
                self.inbox.append(env)
                self.known = env["seq"]
                new = True
        return new


@dataclass(eq=False)
class Watcher:
    """One open coordinator stream; ``None`` in the queue ends it."""

    who: Principal
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(EVENT_BUFFER)
    )
    overflowed: bool = False


class StreamHub:
    """Connected clients of one app instance, fed by one LISTEN connection."""

    def __init__(self, pool: Any, dsn: str, *, heartbeat_s: float, schema: str = "public") -> None:
        self.pool = pool
        self.dsn = dsn
        self.schema = schema
        self.heartbeat_s = heartbeat_s
        self.closing = asyncio.Event()
        self.listening = asyncio.Event()
        self._recipients: dict[str, set[Recipient]] = {}
        self._watchers: set[Watcher] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._task: asyncio.Task[None] | None = None
        self._dirty: set[str] = set()
        self._fetch_wake = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None
        #: Outbox queries run by the fetcher (observability and tests).
        self.batches = 0
        self._changed = asyncio.Event()  # replaced (after being set) on every change

    def _change(self) -> None:
        """Wake :meth:`until`: connections, watchers or queued messages changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked again after every change of the registry
        or of what connections have queued (e.g. "4 connections open"). No deadline here: the
        caller bounds the wait (``asyncio.wait_for``)."""
        while not predicate():
            await self._changed.wait()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, wait_s: float = 10.0) -> None:
        """Start listening; returns once LISTEN is in place (or after ``wait_s``)."""
        self._task = asyncio.create_task(self._listen_forever(), name="stream-hub-listen")
        self._fetcher = asyncio.create_task(self._fetch_forever(), name="stream-hub-fetch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), wait_s)

    async def shutdown(self) -> None:
        """End every stream: SSE responses finish, WebSockets close with GOING_AWAY."""
        self.closing.set()
        for group in self._recipients.values():
            for r in group:
                r.wake.set()
        for w in self._watchers:
            with contextlib.suppress(asyncio.QueueFull):
                w.queue.put_nowait(None)  # a full queue ends anyway: the view checks closing
        sockets = list(self._sockets)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    async def stop(self) -> None:
        """Stop listening (after :meth:`shutdown`)."""
        self.closing.set()
        for task in (self._task, self._fetcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._fetcher = None

    # --- registry -------------------------------------------------------------------------

    def connect(self, person_id: str) -> Recipient:
        """Register a volunteer connection."""
        r = Recipient(person_id)
        self._recipients.setdefault(person_id, set()).add(r)
        self._change()
        return r

    def disconnect(self, r: Recipient) -> None:
        """Forget a volunteer connection."""
        group = self._recipients.get(r.person_id)
        if group is not None:
            group.discard(r)
            if not group:
                del self._recipients[r.person_id]
        self._change()

    def watch(self, who: Principal) -> Watcher:
        """Register a coordinator stream."""
        w = Watcher(who)
        self._watchers.add(w)
        self._change()
        return w

    def unwatch(self, w: Watcher) -> None:
        """Forget a coordinator stream."""
        self._watchers.discard(w)
        self._change()

    def track(self, ws: web.WebSocketResponse) -> None:
        """Remember a WebSocket so shutdown can close it properly."""
        self._sockets.add(ws)

    def untrack(self, ws: web.WebSocketResponse) -> None:
        """Forget a WebSocket."""
        self._sockets.discard(ws)

    @property
    def connections(self) -> int:
        """Open volunteer connections on this instance."""
        return sum(len(g) for g in self._recipients.values())

    @property
    def watchers(self) -> int:
        """Open coordinator streams on this instance."""
        return len(self._watchers)

    # --- delivery -------------------------------------------------------------------------

    async def pump(
        self,
        r: Recipient,
        last: int,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        ping: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Send every message after ``last``, then live ones, until shutdown; returns the last.

        The wake flag is cleared *before* the inbox is looked at: whatever the fetcher queues
        afterwards sets it again, so it is never slept through. ``ping`` runs after each
        heartbeat interval without messages (SSE); without it the loop just waits.
        """
        timeout = self.heartbeat_s if ping is not None else None
        r.known = max(r.known, last)
        while not self.closing.is_set():
            r.wake.clear()
            if r.stale:
                r.stale = False
                async with self.pool.acquire() as con:
                    batch = await outbox.after(con, r.person_id, r.known)
                r.take(batch)
                r.stale = len(batch) >= outbox.PAGE
            while r.inbox:
                items, r.inbox = r.inbox, []
                for env in items:
                    if self.closing.is_set():
                        return last
                    await send(env)
                    last = env["seq"]
            if r.stale or r.wake.is_set():
                continue
            try:
                async with asyncio.timeout(timeout):
                    await r.wake.wait()
            except TimeoutError:
                if ping is not None:
                    await ping()
        return last

    async def _fetch_forever(self) -> None:
        """Read the new messages of every dirty person in as few queries as possible."""
        while True:
            await self._fetch_wake.wait()
            self._fetch_wake.clear()
            dirty, self._dirty = self._dirty, set()
            people = [p for p in dirty if p in self._recipients]
            for k in range(0, len(people), FETCH_PEOPLE):
                await self._fetch(people[k : k + FETCH_PEOPLE])

    async def _fetch(self, people: list[str]) -> None:
        people = [p for p in people if p in self._recipients]  # some left while we awaited
        if not people:
            return
        positions = [min(r.known for r in self._recipients[p]) for p in people]
        try:
            async with self.pool.acquire() as con:
                found = await outbox.after_many(con, people, positions, FETCH_PER_PERSON)
            self.batches += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connections read for themselves instead
            log.warning("batched outbox read failed: %s", exc)
            found = None
        for person in people:
            envelopes = found.get(person, []) if found is not None else []
            for r in self._recipients.get(person, ()):
                if found is None or len(envelopes) >= FETCH_PER_PERSON:
                    r.stale = True
                    r.wake.set()
                elif r.take(envelopes):
                    r.wake.set()
        self._change()

    # --- notifications --------------------------------------------------------------------

    def _wake_all(self) -> None:
        self._dirty.update(self._recipients)
        self._fetch_wake.set()

    def _on_outbox(self, _con: Any, _pid: int, _channel: str, payload: str) -> None:
        here = self._recipients
        dirty = [p for p in payload.split(",") if p in here]
        if dirty:
            self._dirty.update(dirty)
            self._fetch_wake.set()

    def _on_event(self, _con: Any, _pid: int, _channel: str, payload: str) -> None:
        if not self._watchers:
            return  # nobody to tell; skip parsing (a big plan sends many of these)
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("unreadable event notification")
            return
        if not isinstance(data, dict) or data.get("schema") != self.schema:
            return  # a drill in its own schema of the same database
        events = [e for e in data.get("events") or [] if isinstance(e, dict)]
        for w in list(self._watchers):
            if w.overflowed:
                continue
            for e in events:
                if not event_visible(w.who, e):
                    continue
                try:
                    w.queue.put_nowait(public_event(e))
                except asyncio.QueueFull:
                    w.overflowed = True
                    break

    async def _listen_forever(self) -> None:
        backoff = 0.2
        while not self.closing.is_set():
            con: asyncpg.Connection | None = None
            try:
                con = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "muster-streams"}
                )
                lost = asyncio.Event()
                con.add_termination_listener(_setter(lost))
                channel = await con.fetchval("SELECT muster_channel($1)", OUTBOX_CHANNEL)
                await con.add_listener(channel, self._on_outbox)
                await con.add_listener(EVENTS_CHANNEL, self._on_event)
                self.listening.set()
                self._wake_all()  # whatever was sent while nobody listened
                backoff = 0.2
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 30)
                    except TimeoutError:
                        # A silently dropped TCP connection never reports; ask.
                        await con.fetchval("SELECT 1", timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.closing.is_set():
                    log.warning("stream listener lost: %s", exc)
            finally:
                self.listening.clear()
                if con is not None and not con.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(con.close(), 5)
            if self.closing.is_set():
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    """A termination listener that sets ``event``."""

    def on_close(_con: Any) -> None:
        event.set()

    return on_close
