"""Delivering outbox messages to webhook endpoints: signed HTTP POSTs, retries, dead letters.

The dispatcher never waits by itself. Whoever drives it — :class:`WebhookRunner` on wall time
(APScheduler date job at the next due time, LISTEN for new deliveries, a polling fallback), or a
test moving a :class:`~dispatch.clock.ManualClock` — calls :meth:`WebhookDispatcher.run_due`.
Due times are rows (``webhook_deliveries.next_attempt_at``), so a restart re-arms them.

Several dispatchers (one per app instance) share the work without double sending: each leases one
endpoint at a time with ``FOR UPDATE SKIP LOCKED`` and sends that endpoint's due deliveries in
message order. Up to ``concurrency`` endpoints are served at once, each request has a timeout, so
a slow endpoint holds one worker and delays nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatch import webhooks as dom
from dispatch.clock import Clock
from dispatch.config import Settings
from dispatch.services.runner import SchedulerWaker
from dispatch.storage import webhooks as store

log = logging.getLogger("muster.webhooks")

CHANNELS = ("muster_webhooks", "muster_outbox")


@dataclass(frozen=True, slots=True)
class DispatcherConfig:
    """Knobs of the sender (from ``Settings.webhook_*``)."""

    timeout_s: float = 10.0
    concurrency: int = 16
    batch: int = 20
    backoff: dom.Backoff = field(default_factory=dom.Backoff)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request gave: an HTTP status, or a transport error (timeout, connection)."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDispatcher:
    """Sends due deliveries; one per app instance, sharing the queue with the others."""

    def __init__(
        self,
        pool: Any,
        clock: Clock,
        session: aiohttp.ClientSession,
        *,
        config: DispatcherConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.session = session
        self.config = config or DispatcherConfig()
        # Jitter only spreads retries; an explicit RNG makes a test's schedule reproducible.
        self.rng = rng if rng is not None else random.Random(secrets.randbits(64))
        self.owner = f"dispatcher-{uuid.uuid4().hex[:12]}"

    @property
    def lease_s(self) -> float:
        """How long a claim on an endpoint lasts without news (renewed after every request)."""
        return 2 * self.config.timeout_s + 5

    async def run_due(self) -> int:
        """Send everything due now (per the Clock); returns how many attempts were made."""
        workers = [self._worker() for _ in range(max(1, self.config.concurrency))]
        return sum(await asyncio.gather(*workers))

    async def next_due(self) -> datetime | None:
        """When the next pending delivery becomes sendable (``None``: nothing pending)."""
        async with self.pool.acquire() as con:
            return await store.next_due(con)

    async def _worker(self) -> int:
        done = 0
        while True:
            now = self.clock.now()
            async with self.pool.acquire() as con:
                claim = await store.claim_endpoint(
                    con, now, now + timedelta(seconds=self.lease_s), self.owner
                )
            if claim is None:
                return done
            try:
                done += await self._serve(claim)
            finally:
                async with self.pool.acquire() as con:
                    await store.release(con, claim.endpoint_id, self.owner)

    async def _serve(self, claim: store.Claim) -> int:
        """Send one endpoint's due batch in message order."""
        async with self.pool.acquire() as con:
            batch = await store.due_batch(
                con, claim.endpoint_id, self.clock.now(), self.config.batch
            )
        unreachable: str | None = None
        for row in batch:
            attempt = row["attempts"] + 1
            if unreachable is None:
                outcome = await self._post(claim, row, attempt)
                if outcome.status is None:
                    unreachable = outcome.error
            else:
                # One timeout per pass for an unreachable gateway, not one per message.
                outcome = Outcome(
                    None, f"not sent: endpoint unreachable in this pass ({unreachable})"
                )
            await self._record(claim, row["id"], attempt, outcome)
        return len(batch)

    async def _post(self, claim: store.Claim, row: dict[str, Any], attempt: int) -> Outcome:
        delivery_id = str(row["id"])
        body = dom.envelope(row, delivery_id)
        headers = dom.request_headers(
            claim.secrets,
            int(self.clock.now().timestamp()),
            body,
            delivery_id=delivery_id,
            kind=row["kind"],
            exercise=row["exercise"],
            attempt=attempt,
        )
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with self.session.post(
                claim.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                text = (await resp.content.read(300)).decode("utf-8", "replace")
                if 200 <= resp.status < 300:
                    return Outcome(resp.status, None)
                return Outcome(resp.status, f"HTTP {resp.status}: {text}".strip())
        except TimeoutError:
            return Outcome(None, f"timed out after {self.config.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}")

    async def _record(
        self, claim: store.Claim, delivery_id: uuid.UUID, attempt: int, outcome: Outcome
    ) -> None:
        now = self.clock.now()
        lease = (claim.endpoint_id, self.owner, now + timedelta(seconds=self.lease_s))
        async with self.pool.acquire() as con:
            if outcome.ok:
                assert outcome.status is not None
                await store.record_delivered(con, delivery_id, now, outcome.status, lease)
                return
            nxt = self.config.backoff.next_attempt(attempt, now, self.rng)
            await store.record_failed(
                con, delivery_id, now, outcome.status, outcome.error or "failed", nxt, lease
            )
        if nxt is None:
            log.warning(
                "webhook delivery dead-lettered",
                extra={"delivery": str(delivery_id), "endpoint": claim.endpoint_id},
            )


class WebhookRunner:
    """Live wiring: arms an APScheduler date job at the next due time, wakes on NOTIFY, and
    polls every ``poll_s`` as a fallback (lost notifications, a dropped listen connection)."""

    def __init__(self, dispatcher: WebhookDispatcher, dsn: str, *, poll_s: float = 5.0) -> None:
        self.dispatcher = dispatcher
        self.dsn = dsn
        self.poll_s = poll_s
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.waker = SchedulerWaker(self.scheduler, self._wake_job, job_id="webhooks-wake")
        self._con: asyncpg.Connection | None = None
        self._running: asyncio.Task[None] | None = None
        self._again = False

    async def start(self) -> None:
        """Start polling and listening, and send whatever is already due."""
        self.scheduler.start()
        self.scheduler.add_job(
            self._poll, "interval", seconds=self.poll_s, id="webhooks-poll", coalesce=True
        )
        await self._listen()
        self.wake()

    async def stop(self) -> None:
        """Stop waking; let a pass in flight finish (bounded by the request timeout)."""
        self.scheduler.shutdown(wait=False)
        if self._running is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._running), self.dispatcher.lease_s)
            except (TimeoutError, Exception):
                log.warning("webhook pass did not finish before shutdown")
        if self._con is not None:
            await self._con.close()
            self._con = None

    async def _listen(self) -> None:
        if self._con is not None and not self._con.is_closed():
            return
        try:
            con = await asyncpg.connect(self.dsn)
            for base in CHANNELS:
                channel = await con.fetchval("SELECT muster_channel($1)", base)
                await con.add_listener(channel, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("webhooks cannot listen for notifications: %s", exc)
            return
        self._con = con

    def _on_notify(self, *_args: Any) -> None:
        self.wake()

    async def _poll(self) -> None:
        await self._listen()
        self.wake()

    async def _wake_job(self) -> None:
        # APScheduler runs coroutine functions on the event loop (plain ones go to a thread).
        self.wake()

    def wake(self) -> None:
        """Run a pass now, or right after the one in flight."""
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.dispatcher.run_due()
                due = await self.dispatcher.next_due()
            except Exception:
                log.exception("webhook pass failed; the poll retries")
                return
            if self._again:
                continue
            self._arm(due)
            return

    def _arm(self, when: datetime | None) -> None:
        if when is not None:
            # Due but not sendable now (another instance's lease): the poll comes back for it.
            when = max(when, self.dispatcher.clock.now() + timedelta(milliseconds=500))
        self.waker.arm(when)


def config_from(settings: Settings) -> DispatcherConfig:
    """The sender's knobs from ``MUSTER_WEBHOOK_*`` settings."""
    return DispatcherConfig(
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        batch=settings.webhook_batch,
        backoff=dom.Backoff(
            base_s=settings.webhook_backoff_base_s,
            cap_s=settings.webhook_backoff_cap_s,
            max_attempts=settings.webhook_max_attempts,
        ),
    )


@asynccontextmanager
async def webhook_service(
    pool: Any, clock: Clock, dsn: str, settings: Settings, *, live: bool
) -> AsyncIterator[WebhookDispatcher]:
    """The dispatcher with its HTTP session; ``live`` also runs it in the background."""
    # No cookie jar: one gateway must not see cookies set by another.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        dispatcher = WebhookDispatcher(pool, clock, session, config=config_from(settings))
        runner = WebhookRunner(dispatcher, dsn, poll_s=settings.webhook_poll_s) if live else None
        if runner is not None:
            await runner.start()
        try:
            yield dispatcher
        finally:
            if runner is not None:
                await runner.stop()
