"""The mobilisation engine: expires offers, re-plans, offers, and tells its waker when to return.

It never waits by itself. Whatever drives it — APScheduler on wall time in a live service, a
simulated clock in a drill, a test that moves a :class:`~dispatch.clock.ManualClock` — calls
:meth:`Engine.run_due` and arms its next wake-up from :meth:`Engine.next_due`. All timers are
rows in the database, so a restarted engine re-arms from there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dispatch import planning
from dispatch.clock import Clock
from dispatch.solve_memo import SolveMemo
from dispatch.storage import engine as store
from dispatch.storage import plans as plans_store
from dispatch.storage import world as world_store
from solver import parse_snapshot, solve

log = logging.getLogger("muster.engine")


class Waker(Protocol):
    """Something that calls the engine back at (or soon after) a given time."""

    def arm(self, when: datetime | None) -> None: ...


class NoWaker:
    """For tests and drills, which drive the engine themselves; remembers the last request."""

    def __init__(self) -> None:
        self.when: datetime | None = None

    def arm(self, when: datetime | None) -> None:
        self.when = when


def solve_snapshot(snapshot: dict[str, Any], time_limit_s: float, seed: int) -> dict[str, Any]:
    """Run the pure solver on a snapshot dict (in an executor)."""
    return solve(parse_snapshot(snapshot), time_limit_s=time_limit_s, seed=seed).to_dict()


def plan_in_executor(
    world: planning.World, time_limit_s: float, seed: int, memo: SolveMemo | None = None
) -> list[planning.GroupResult]:
    """CPU work of one re-plan: all groups, solved in order.

    With ``memo``, a group whose solver input is unchanged since the previous re-plan gets its
    previous plan back instead of a new solve (see :mod:`dispatch.solve_memo`).
    """

    def solve(snap: dict[str, Any]) -> dict[str, Any]:
        return solve_snapshot(snap, time_limit_s, seed)

    if memo is None:
        return planning.plan_world(world, solve)
    memo.begin()
    return planning.plan_world(world, lambda snap: memo.solve(snap, solve, (time_limit_s, seed)))


@dataclass
class TickReport:
    """What one call of :meth:`Engine.run_due` did."""

    expired: list[str] = field(default_factory=list)
    plan_id: int | None = None
    offers: int = 0
    withdrawn: int = 0
    next_due: datetime | None = None


def _recent() -> deque[float]:
    return deque(maxlen=50_000)


@dataclass
class PlanTimings:
    """Wall-clock seconds of the steps of recent stored plans (benchmarks; never in a report)."""

    load: deque[float] = field(default_factory=_recent)  # reading the world
    solve: deque[float] = field(default_factory=_recent)  # the planner, in the executor
    apply: deque[float] = field(default_factory=_recent)  # storing and applying the plan


@dataclass
class EngineConfig:
    """Knobs of the engine."""

    solve_time_limit_s: float = 2.0
    seed: int = 0
    debounce_s: float = 1.0
    exercise: bool = False
    max_supersede: int = 3


class Engine:
    """Plans and re-plans; one instance per database is the leader that runs it."""

    def __init__(
        self,
        pool: Any,
        clock: Clock,
        *,
        executor: Executor | None = None,
        waker: Waker | None = None,
        config: EngineConfig | None = None,
        on_plan: Callable[[TickReport], None] | None = None,
        planner: Callable[[planning.World, float, int], list[planning.GroupResult]] | None = None,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.executor = executor
        self.waker = waker or NoWaker()
        self.config = config or EngineConfig()
        self.on_plan = on_plan
        # Plans of the previous re-plan's groups, for groups whose input did not change.
        self.memo = SolveMemo()
        self.planner = planner or functools.partial(plan_in_executor, memo=self.memo)
        self.superseded = 0
        self._lock = asyncio.Lock()
        self.plans_made = 0
        # Parsed roster of this engine's schema (its pool has one search path).
        self.world_cache = world_store.WorldCache()
        self.timings = PlanTimings()

    async def warm_up(self) -> None:
        """Read the world once so the first real re-plan finds the roster parsed and cached."""
        async with self.pool.acquire() as con:
            await world_store.load(con, self.clock.now(), self.world_cache)

    async def next_due(self) -> datetime | None:
        """When the engine next has something to do."""
        async with self.pool.acquire() as con:
            return await store.next_due(con)

    async def run_due(self) -> TickReport:
        """Do everything that is due now: expire offers, re-plan if asked or on cadence."""
        async with self._lock:
            now = self.clock.now()
            report = TickReport()
            async with self.pool.acquire() as con:
                expired = await store.expire_due(
                    con, now, exercise=self.config.exercise, debounce_s=self.config.debounce_s
                )
                report.expired = [e.id for e in expired]
                st = await store.state(con)
            due = [t for t in (st["replan_due_at"], st["cadence_due_at"]) if t is not None]
            if due and min(due) <= now:
                await self._replan(report)
            report.next_due = await self.next_due()
            self.waker.arm(report.next_due)
            return report

    async def replan_now(self, reason: str = "manual") -> TickReport:
        """Re-plan immediately, whatever the timers say (coordinator button, benchmarks)."""
        async with self.pool.acquire() as con:
            await store.request_replan(con, self.clock.now(), reason, debounce_s=0)
        return await self.run_due()

    async def _replan(self, report: TickReport) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(self.config.max_supersede + 1):
            now = self.clock.now()
            t_load = time.perf_counter()
            async with self.pool.acquire() as con:
                gen, reasons = await store.claim_replan(con)
                world, policies = await world_store.load(con, now, self.world_cache)
            started = time.perf_counter()
            t_load = started - t_load
            results = await loop.run_in_executor(
                self.executor,
                self.planner,
                world,
                self.config.solve_time_limit_s,
                self.config.seed,
            )
            seconds = time.perf_counter() - started
            async with self.pool.acquire() as con:
                newer = await store.generation(con) != gen
            if newer and attempt < self.config.max_supersede:
                log.info("plan superseded by a newer request; solving again")
                self.superseded += 1
                continue
            changes = planning.diff(results, world.active)
            t_apply = time.perf_counter()
            # Encoding the snapshots is CPU work as large as a small solve: not on the loop.
            snapshot = await loop.run_in_executor(
                self.executor, plans_store.encode_snapshot, results
            )
            async with self.pool.acquire() as con:
                applied = await store.apply_plan(
                    con,
                    now=self.clock.now(),
                    trigger="; ".join(reasons) or "cadence",
                    results=results,
                    changes=changes,
                    expiry_s={k: p.offer_expiry_s for k, p in policies.items()},
                    cadence_s=min((i.policy.replan_every_s for i in world.incidents), default=None),
                    solve_seconds=seconds,
                    exercise=self.config.exercise,
                    snapshot=snapshot,
                )
            self.plans_made += 1
            self.timings.load.append(t_load)
            self.timings.solve.append(seconds)
            self.timings.apply.append(time.perf_counter() - t_apply)
            report.plan_id = applied.plan_id
            report.offers += len(applied.offers)
            report.withdrawn += len(applied.withdrawn)
            if self.on_plan is not None:
                self.on_plan(report)
            return
