"""Simulated time for drills: jump from event to event, or pace at ×N real time.

The engine, storage and domain code only ever call :meth:`SimClock.now`; the drill loop moves
the clock with :meth:`SimClock.advance_to`. At ``--speed max`` that is an instant jump; at ×N it
first waits ``(when - now) / N`` real seconds (an asyncio wait: nothing blocks the event loop).
A drill steered through the trainer API uses :class:`drills.service.DrillClock`, which can also
be paused, stopped and woken.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from dispatch.clock import ManualClock

__all__ = ["SimClock"]


class SimClock(ManualClock):
    """A :class:`~dispatch.clock.ManualClock` the drill loop advances, optionally paced."""

    def __init__(self, start: datetime, speed: float | None = None) -> None:
        super().__init__(start)
        self.speed = speed

    async def advance_to(self, when: datetime) -> None:
        """Move to ``when``; at ×N first wait the proportional real time."""
        if when <= self.now():
            return
        if self.speed is not None:
            await asyncio.sleep((when - self.now()).total_seconds() / self.speed)
        self.set(when)
