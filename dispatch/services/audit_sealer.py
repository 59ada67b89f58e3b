"""The audit sweeper: seals rows that committed while another commit held the chain lock.

Commits seal the audit chain themselves when the chain lock is free (migration 0010); under
load some rows commit unsealed, and the next sealing commit picks them up. This sweeper makes
sure that also happens when no further audited write comes: about once a second it seals
whatever is pending. Several instances may sweep one database; the chain lock serialises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from dispatch.storage import audit_log

log = logging.getLogger("muster.audit")

__all__ = ["AuditSealer"]


class AuditSealer:
    """A background task sealing pending audit rows every ``interval_s`` seconds."""

    def __init__(self, pool: Any, *, interval_s: float = 1.0) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._swept = asyncio.Event()  # set (and replaced) after every pass of the loop

    async def next_sweep(self) -> None:
        """Return after the background loop's next pass (whether it sealed anything or not)."""
        await self._swept.wait()

    def _passed(self) -> None:
        self._swept.set()
        self._swept = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def sweep(self) -> int:
        """Seal what is pending now; returns how many rows were sealed."""
        async with self.pool.acquire() as con:
            return await audit_log.seal(con)

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
            try:
                sealed = await self.sweep()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The pool closing under us or the server gone: try again next tick.
                log.warning("audit sweep failed: %s", exc)
                continue
            finally:
                self._passed()
            if sealed:
                log.debug("sealed %d pending audit rows", sealed)
