"""Simulated time for drills: jump from event to event, or pace at ×N real time.

The engine, storage and domain code only ever call :meth:`SimClock.now`; the drill loop moves
the clock with :meth:`SimClock.advance_to`. At ``--speed max`` that is an instant jump; at ×N it
waits ``(when - now) / N`` real seconds first, in short asyncio waits so a pause or stop is
noticed quickly (and nothing blocks the event loop).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from dispatch.clock import ManualClock

__all__ = ["SimClock", "parse_speed"]

_STEP_S = 0.25  # longest single real-time wait while pacing


def parse_speed(text: str) -> float | None:
    """``max`` → ``None`` (no pacing); ``x60`` / ``60`` → 60.0 (60 simulated seconds a second)."""
    t = text.strip().lower()
    if t == "max":
        return None
    value = float(t[1:] if t.startswith("x") else t)
    if not value > 0:
        raise ValueError("speed must be 'max' or a positive factor such as x60")
    return value


class SimClock(ManualClock):
    """A :class:`~dispatch.clock.ManualClock` the drill loop advances, optionally paced."""

    def __init__(self, start: datetime, speed: float | None = None) -> None:
        super().__init__(start)
        self.speed = speed
        self.paused = asyncio.Event()
        self.paused.set()  # set = running

    async def advance_to(self, when: datetime) -> None:
        """Move to ``when``; at ×N first wait the proportional real time."""
        if when <= self.now():
            return
        if self.speed is not None:
            real = (when - self.now()).total_seconds() / self.speed
            deadline = time.monotonic() + real
            while (left := deadline - time.monotonic()) > 0:
                await self.paused.wait()
                await asyncio.sleep(min(_STEP_S, left))
        self.set(when)

    def offset(self, start: datetime) -> float:
        """Simulated seconds since ``start``."""
        return (self.now() - start) / timedelta(seconds=1)
