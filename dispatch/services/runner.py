"""Running the engine live: leadership by advisory lock, APScheduler wake-ups, LISTEN/NOTIFY.

Several app instances may share one database; exactly one holds the engine lock and plans. The
others keep serving the API and try for the lock now and then, so a crashed leader is replaced.
Requests from any instance reach the leader through ``NOTIFY muster_engine``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatch.services.engine import Engine

log = logging.getLogger("muster.engine")

ENGINE_LOCK = (0x6D757374, 2)  # ("must", 2): the planner's advisory lock


class SchedulerWaker:
    """Arms one APScheduler date job (``job_id``) at the next due time; ``None`` disarms it."""

    def __init__(
        self, scheduler: AsyncIOScheduler, callback: Any, *, job_id: str = "engine-wake"
    ) -> None:
        self.scheduler = scheduler
        self.callback = callback
        self.job_id = job_id

    def arm(self, when: datetime | None) -> None:
        if when is None:
            job = self.scheduler.get_job(self.job_id)
            if job is not None:
                job.remove()
            return
        self.scheduler.add_job(
            self.callback,
            "date",
            run_date=when,
            id=self.job_id,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )


class LiveRunner:
    """Owns the leadership connection and the scheduler of one app instance."""

    def __init__(self, engine: Engine, dsn: str, *, retry_s: float = 5.0) -> None:
        self.engine = engine
        self.dsn = dsn
        self.retry_s = retry_s
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.engine.waker = SchedulerWaker(self.scheduler, self._wake_job)
        self._con: asyncpg.Connection | None = None
        self.is_leader = False
        self.leader_event = asyncio.Event()
        self._running: asyncio.Task[Any] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Start the scheduler and try for leadership at once and every ``retry_s``."""
        self.scheduler.start()
        self.scheduler.add_job(
            self._try_lead,
            "interval",
            seconds=self.retry_s,
            id="engine-lead",
            max_instances=1,
            coalesce=True,
        )
        await self._try_lead()

    async def stop(self) -> None:
        """Stop waking; release the lock by closing the leadership connection."""
        self.scheduler.shutdown(wait=False)
        if self._running is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._running), 10)
            except (TimeoutError, Exception):
                log.warning("engine run did not finish before shutdown")
        if self._con is not None:
            await self._con.close()
            self._con = None
        self.is_leader = False

    async def _try_lead(self) -> None:
        if self.is_leader:
            if self._con is not None and not self._con.is_closed():
                return
            self.is_leader = False
        try:
            con = await asyncpg.connect(self.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("engine cannot reach the database: %s", exc)
            return
        got = await con.fetchval("SELECT pg_try_advisory_lock($1, $2)", *ENGINE_LOCK)
        if not got:
            await con.close()
            return
        self._con = con
        self.is_leader = True
        self.leader_event.set()
        channel = await con.fetchval("SELECT muster_channel('muster_engine')")
        await con.add_listener(channel, self._on_notify)
        log.info("this instance now leads the engine")
        await self.engine.warm_up()
        self._wake()  # re-arm from the database: pending offers and re-plans survive restarts

    def _on_notify(self, *_args: Any) -> None:
        if self.is_leader:
            asyncio.get_running_loop().call_soon(self._rearm)

    def _rearm(self) -> None:
        async def rearm() -> None:
            due = await self.engine.next_due()
            self.engine.waker.arm(due)

        task = asyncio.ensure_future(rearm())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wake_job(self) -> None:
        # APScheduler runs coroutine functions on the event loop (plain ones go to a thread).
        self._wake()

    def _wake(self) -> None:
        if not self.is_leader:
            return
        if self._running is not None and not self._running.done():
            return
        self._running = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.engine.run_due()
        except Exception:
            log.exception("engine run failed; retrying shortly")
            self.scheduler.add_job(
                self._wake_job,
                "interval",
                seconds=self.retry_s,
                id="engine-wake",
                replace_existing=True,
            )
