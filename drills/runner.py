"""The drill loop: the live engine on simulated time, injects and simulated responders.

Composition (the same as :func:`api.app.create_app` wires for live operation, with simulated
adapters): an :class:`~dispatch.services.engine.Engine` on a pool whose search path is the drill
schema, a :class:`~drills.clock.SimClock`, ``EngineConfig(exercise=True)``, and the drill's
planner (:mod:`drills.policies`). Injects go through the same use cases the HTTP API calls
(incidents with the engine's ``incident_hook``, ``change_mode``, depots and stock), answers
through :mod:`dispatch.storage.assignments` as the volunteer concerned, and offers are found the
way a volunteer's client finds them: as ``offer`` messages in the (drill schema's) outbox.

The loop: next event = min(next inject, next responder action, engine's next due time); move the
clock there (instantly, or paced at ×N); apply due injects, then due responder actions, then
``engine.run_due()``; read new outbox messages; repeat until the scenario ends.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from dispatch import incidents as inc_dom
from dispatch.access import Principal, Role
from dispatch.assignments import Status
from dispatch.audit import AuditContext
from dispatch.errors import DomainError
from dispatch.modes import ModeChange
from dispatch.services.engine import Engine, EngineConfig
from dispatch.services.mobilisation import change_mode, incident_hook
from dispatch.storage import allocations as alloc_store
from dispatch.storage import assignments as asg_store
from dispatch.storage import engine as engine_store
from dispatch.storage import incidents as inc_store
from dispatch.storage import supplies as supplies_store
from dispatch.storage.database import create_pool
from dispatch.supplies import DepotPatch, StockAdjust
from drills import isolation, metrics
from drills.clock import SimClock
from drills.policies import Policy, make_planner
from drills.responders import Decision, PersonInfo, SimulatedResponders
from drills.scenario import (
    DepotLost,
    IncidentClosed,
    IncidentReported,
    IncidentUpdated,
    ModeChanged,
    Scenario,
    StockDestroyed,
    TravelSlowed,
    VolunteersUnavailable,
)

log = logging.getLogger("muster.drills")

__all__ = ["DrillOptions", "DrillResult", "run_drill"]

Progress = Callable[[float, str], None]


class Control(Protocol):
    """Hooks for a drill steered from outside while it runs (the trainer API: drills.service)."""

    #: Real people: their offers are left to them (and relayed), never answered by simulation.
    participants: frozenset[str]

    def clock(self, start: datetime, speed: float | None) -> SimClock:
        """The drill's clock (one that can be paused and woken early)."""

    def stop_requested(self) -> bool:
        """Checked between events: true ends the drill early, with a partial report."""

    async def after_step(self) -> None:
        """After each step (relay messages to real people; wait here while paused)."""


@dataclass
class DrillOptions:
    """How to run a scenario."""

    seed: int | None = None
    speed: float | None = None  # None = as fast as possible
    policy: Policy = "optimised"
    keep: bool = False
    progress: Progress | None = None
    schema: str | None = None
    control: Control | None = None


@dataclass
class DrillResult:
    """The deterministic report, the wall-clock figures of this run, and the schema used."""

    report: dict[str, Any]
    run: dict[str, Any]
    schema: str


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    what: Any = field(compare=False)


@dataclass(frozen=True)
class _Restore:
    """Internal inject: a slowed area's roads recover."""

    jurisdiction: str
    type: str = "travel_restored"


@dataclass(frozen=True)
class _Act:
    """A simulated responder's next step on an assignment."""

    step: str  # accept | decline | en_route | on_scene
    assignment: str
    person: str
    incident: str
    decision: Decision
    travel_minutes: float


class _Drill:
    def __init__(
        self, scenario: Scenario, pool: Any, schema: str, seed: int, options: DrillOptions
    ) -> None:
        self.s = scenario
        self.pool = pool
        self.schema = schema
        self.seed = seed
        self.options = options
        ctl = options.control
        self.clock = (
            ctl.clock(scenario.start, options.speed)
            if ctl
            else SimClock(scenario.start, options.speed)
        )
        self.real = ctl.participants if ctl else frozenset()
        self.stopped_s: float | None = None
        self.slowed: dict[str, float] = {}  # jurisdiction path → road-factor multiplier
        self.engine = Engine(
            pool,
            self.clock,
            config=EngineConfig(
                solve_time_limit_s=scenario.engine.solve_time_limit_s,
                seed=seed,
                debounce_s=scenario.engine.debounce_s,
                exercise=True,
            ),
            planner=make_planner(options.policy, self.slowed),
        )
        self.injects: list[_Event] = []
        self.acts: list[_Event] = []
        self.order = 0
        self.outbox_seen = 0
        self.messages: list[dict[str, Any]] = []
        self.incidents: dict[str, metrics.IncidentRec] = {}
        self.inject_log: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {
            "answered_late": 0,
            "no_answer": 0,
            "steps_overtaken": 0,
        }
        self.paths: dict[str, str] = {}
        self.centres: dict[str, tuple[float, float]] = {}
        self._leaves: list[tuple[str, tuple[float, float]]] | None = None
        self.on_arrival: dict[str, int] = {}  # incident → seconds it stays open after arrival
        self.responders: SimulatedResponders | None = None

    # ---- helpers -----------------------------------------------------------------------------

    @property
    def ctx(self) -> AuditContext:
        """The trainer's injects as the actor, stamped with the simulated time."""
        return AuditContext("drill:trainer", "trainer", at=self.clock.now())

    def _t(self, at: datetime | None) -> float | None:
        return None if at is None else round((at - self.s.start).total_seconds(), 3)

    def _now_s(self) -> float:
        return round((self.clock.now() - self.s.start).total_seconds(), 3)

    def _push(self, heap: list[_Event], at: datetime, what: Any) -> None:
        self.order += 1
        heapq.heappush(heap, _Event(at, self.order, what))

    def _hook(self) -> inc_store.ChangeHook:
        return incident_hook(self.clock.now(), exercise=True, debounce_s=self.s.engine.debounce_s)

    async def setup(self) -> None:
        async with self.pool.acquire() as con:
            for r in await con.fetch(
                "SELECT code, path, centre_lat, centre_lon FROM jurisdictions"
            ):
                self.paths[r["code"]] = r["path"]
                if r["centre_lat"] is not None:
                    self.centres[r["code"]] = (r["centre_lat"], r["centre_lon"])
            rows = await con.fetch(
                "SELECT p.id, p.kind, p.skills, j.path FROM people AS p"
                " JOIN jurisdictions AS j ON j.code = p.jurisdiction_code WHERE p.active"
            )
        people = {
            r["id"]: PersonInfo(
                r["id"], r["kind"], r["path"], frozenset(s["name"] for s in r["skills"] or [])
            )
            for r in rows
        }
        self.responders = SimulatedResponders(self.s.responders, self.seed, people, self.paths)
        for k, inj in enumerate(self.s.timeline):
            self._push(self.injects, self.s.start + timedelta(seconds=inj.at), (k, inj))
        await self.engine.warm_up()

    # ---- injects -----------------------------------------------------------------------------

    async def apply(self, k: int, inj: Any) -> None:
        now = self.clock.now()
        entry: dict[str, Any] = {"at_s": self._now_s(), "type": inj.type}
        try:
            detail = await self._apply(k, inj, now)
            entry.update(ok=True, **detail)
        except DomainError as exc:
            entry.update(ok=False, error=str(exc))
        self.inject_log.append(entry)

    async def _apply(self, k: int, inj: Any, now: datetime) -> dict[str, Any]:
        who = isolation.TRAINER
        debounce = self.s.engine.debounce_s
        async with self.pool.acquire() as con:
            if isinstance(inj, IncidentReported):
                loc = inj.location.model_dump() if inj.location else self._near(inj)
                code = inj.jurisdiction or self._locate(loc["lat"], loc["lon"])
                body = inc_dom.IncidentCreate.model_validate(
                    {
                        "id": inj.id,
                        "type": inj.kind,
                        "title": inj.title,
                        "description": inj.note,
                        "location": loc,
                        "jurisdiction": code,
                        "priority": inj.priority,
                        "status": inj.status,
                        "demands": [d.model_dump() for d in inj.demands],
                        "supplies": dict(inj.supplies),
                    },
                    strict=False,
                )
                await inc_store.create(con, who, self.ctx, body, on_change=self._hook())
                t = self._now_s()
                self.incidents[inj.id] = metrics.IncidentRec(
                    inj.id,
                    inj.priority,
                    code,
                    t,
                    demand=[(t, {d.skill: d.count for d in inj.demands})],
                    supplies=[(t, dict(inj.supplies))],
                    priorities=[(t, inj.priority)],
                )
                if inj.close_after is not None:
                    closing = IncidentClosed(
                        at=inj.at + inj.close_after, type="incident_closed", id=inj.id
                    )
                    self._push(self.injects, now + timedelta(seconds=inj.close_after), (k, closing))
                if inj.close_after_arrival is not None:
                    self.on_arrival[inj.id] = inj.close_after_arrival
                if inj.jurisdiction is None:
                    return {"incident": inj.id, "located_in": code}
                return {"incident": inj.id}
            if isinstance(inj, IncidentUpdated):
                patch: dict[str, Any] = {}
                if inj.priority is not None:
                    patch["priority"] = inj.priority
                if inj.title is not None:
                    patch["title"] = inj.title
                if inj.demands is not None:
                    patch["demands"] = [d.model_dump() for d in inj.demands]
                if inj.supplies is not None:
                    patch["supplies"] = dict(inj.supplies)
                body_p = inc_dom.IncidentPatch.model_validate(patch, strict=False)
                await inc_store.update(
                    con, who, self.ctx, inj.id, body_p, None, on_change=self._hook()
                )
                rec = self.incidents[inj.id]
                t = self._now_s()
                if inj.demands is not None:
                    rec.demand.append((t, {d.skill: d.count for d in inj.demands}))
                if inj.supplies is not None:
                    rec.supplies.append((t, dict(inj.supplies)))
                if inj.priority is not None:
                    rec.priorities.append((t, inj.priority))
                return {"incident": inj.id}
            if isinstance(inj, IncidentClosed):
                if self.incidents[inj.id].closed_s is not None:  # closed on arrival already
                    return {"incident": inj.id, "already_closed": True}
                body_s = inc_dom.StatusChange.model_validate(
                    {"status": "closed", "reason": inj.reason or "drill"}, strict=False
                )
                await inc_store.set_status(
                    con, who, self.ctx, inj.id, body_s, None, on_change=self._hook()
                )
                self.incidents[inj.id].closed_s = self._now_s()
                return {"incident": inj.id}
            if isinstance(inj, ModeChanged):
                change = ModeChange.model_validate(
                    {"mode": inj.mode, "level": inj.level, "reason": inj.reason}, strict=False
                )
                out = await change_mode(
                    con,
                    who,
                    self.ctx,
                    inj.jurisdiction,
                    change,
                    None,
                    now,
                    exercise=True,
                    debounce_s=debounce,
                )
                detail: dict[str, Any] = {"jurisdiction": inj.jurisdiction}
                if "stand_down" in out:
                    sd = out["stand_down"]
                    detail["stand_down"] = {
                        k: sd[k] for k in ("released", "withdrawn", "people", "total_hours")
                    }
                return detail
            if isinstance(inj, DepotLost):
                return await self._depot_lost(con, inj, now)
            if isinstance(inj, StockDestroyed):
                return await self._stock_destroyed(con, inj, now)
            if isinstance(inj, TravelSlowed):
                path = self.paths.get(inj.jurisdiction)
                if path is None:
                    raise _unknown("jurisdiction", inj.jurisdiction)
                self.slowed[path] = inj.factor
                await engine_store.request_replan(
                    con, now, f"roads slowed in {inj.jurisdiction}", debounce
                )
                if inj.until is not None:
                    self._push(
                        self.injects,
                        self.s.start + timedelta(seconds=inj.until),
                        (k, _Restore(inj.jurisdiction)),
                    )
                return {"jurisdiction": inj.jurisdiction, "factor": inj.factor}
            if isinstance(inj, _Restore):
                self.slowed.pop(self.paths[inj.jurisdiction], None)
                await engine_store.request_replan(
                    con, now, f"roads reopened in {inj.jurisdiction}", debounce
                )
                return {"jurisdiction": inj.jurisdiction}
            if isinstance(inj, VolunteersUnavailable):
                assert self.responders is not None
                until = (
                    self.s.start + timedelta(seconds=inj.until) if inj.until is not None else None
                )
                chosen = self.responders.make_unavailable(
                    str(k), inj.jurisdiction, inj.skill, inj.share, until, inj.response
                )
                return {"jurisdiction": inj.jurisdiction, "people": len(chosen)}
        raise AssertionError(f"unknown inject {inj!r}")

    def _locate(self, lat: float, lon: float) -> str:
        """The community (leaf jurisdiction) whose centre is nearest to a point (replayed calls)."""
        if self._leaves is None:
            paths = set(self.paths.values())
            self._leaves = sorted(
                (code, c)
                for code, c in self.centres.items()
                if not any(q.startswith(self.paths[code] + "/") for q in paths)
            )
        if not self._leaves:
            raise _unknown("jurisdiction with a centre near", f"{lat},{lon}")
        scale = math.cos(math.radians(lat)) ** 2

        def dist2(e: tuple[str, tuple[float, float]]) -> float:
            return (e[1][0] - lat) ** 2 + scale * (e[1][1] - lon) ** 2

        return min(self._leaves, key=dist2)[0]

    def _near(self, inj: IncidentReported) -> dict[str, float]:
        """A seeded point near the jurisdiction's centre (within about 600 m)."""
        lat, lon = self.centres.get(inj.jurisdiction or "", (0.0, 0.0))
        rng = random.Random(f"{self.seed}|location|{inj.id}")
        return {
            "lat": round(lat + rng.uniform(-0.005, 0.005), 6),
            "lon": round(lon + rng.uniform(-0.005, 0.005), 6),
        }

    async def _depot_lost(
        self, con: asyncpg.Connection, inj: DepotLost, now: datetime
    ) -> dict[str, Any]:
        who = isolation.TRAINER
        patch = DepotPatch.model_validate({"active": False}, strict=False)
        await supplies_store.update_depot(con, who, self.ctx, inj.depot, patch, None)
        ids = [
            r["id"]
            for r in await con.fetch(
                "SELECT id FROM allocations WHERE depot_id = $1 AND status = 'reserved' ORDER BY id",
                inj.depot,
            )
        ]
        for aid in ids:
            await alloc_store.move(
                con, who, self.ctx, aid, alloc_store.AllocationStatus.CANCELLED, now
            )
        await engine_store.request_replan(
            con, now, f"depot {inj.depot} lost", self.s.engine.debounce_s
        )
        return {"depot": inj.depot, "reservations_cancelled": len(ids)}

    async def _stock_destroyed(
        self, con: asyncpg.Connection, inj: StockDestroyed, now: datetime
    ) -> dict[str, Any]:
        rows = await con.fetch(
            "SELECT item, quantity, reserved FROM stock WHERE depot_id = $1 ORDER BY item",
            inj.depot,
        )
        if not rows:
            raise _unknown("depot", inj.depot)
        destroyed: dict[str, int] = {}
        for r in rows:
            free = int(r["quantity"]) - int(r["reserved"])
            want = 0
            if inj.items is not None and r["item"] in inj.items:
                want = inj.items[r["item"]]
            elif inj.share is not None:
                want = round(int(r["quantity"]) * inj.share)
            take = min(want, free)  # reserved units are already on their way
            if take <= 0:
                continue
            body = StockAdjust.model_validate(
                {"item": r["item"], "delta": -take, "reason": inj.reason}, strict=False
            )
            await supplies_store.adjust_stock(con, isolation.TRAINER, self.ctx, inj.depot, body)
            destroyed[r["item"]] = take
        await engine_store.request_replan(
            con, now, f"stock destroyed at {inj.depot}", self.s.engine.debounce_s
        )
        return {"depot": inj.depot, "destroyed": destroyed}

    # ---- responders --------------------------------------------------------------------------

    async def read_outbox(self) -> None:
        """New messages: record them; schedule the recipient's answer to every offer."""
        assert self.responders is not None
        async with self.pool.acquire() as con:
            rows = await con.fetch(
                "SELECT id, person_id, kind, payload, exercise FROM outbox WHERE id > $1"
                " ORDER BY id",
                self.outbox_seen,
            )
        now = self.clock.now()
        for r in rows:
            self.outbox_seen = r["id"]
            self.messages.append({"kind": r["kind"], "exercise": r["exercise"]})
            if r["kind"] != "offer" or r["person_id"] in self.real:
                continue
            p = r["payload"]
            d = self.responders.decide(r["person_id"], p["incident"], p["skill"], now)
            if d.answer == "none":
                self.counts["no_answer"] += 1
                continue
            act = _Act(
                d.answer,
                p["assignment"],
                r["person_id"],
                p["incident"],
                d,
                float(p.get("travel_minutes") or 10.0),
            )
            self._push(self.acts, now + timedelta(seconds=round(d.delay_s, 3)), act)

    async def act(self, a: _Act) -> None:
        now = self.clock.now()
        who = Principal(f"drill-{a.person}", Role.VOLUNTEER, None, None, a.person)
        ctx = AuditContext(f"drill:{a.person}", "volunteer", at=now)
        try:
            async with self.pool.acquire() as con:
                if a.step == "accept":
                    await asg_store.accept(con, who, ctx, a.assignment, now)
                    nxt = _Act(
                        "en_route", a.assignment, a.person, a.incident, a.decision, a.travel_minutes
                    )
                    self._push(self.acts, now + timedelta(seconds=a.decision.departure_s), nxt)
                elif a.step == "decline":
                    await asg_store.decline(
                        con,
                        who,
                        ctx,
                        a.assignment,
                        a.decision.why or "simulated decline",
                        now,
                        debounce_s=self.s.engine.debounce_s,
                    )
                else:
                    target = Status.EN_ROUTE if a.step == "en_route" else Status.ON_SCENE
                    await asg_store.report_status(con, who, ctx, a.assignment, target, now, None)
                    stay = self.on_arrival.pop(a.incident, None) if a.step == "on_scene" else None
                    if stay is not None:  # the visit or delivery is done `stay` after arrival
                        done = IncidentClosed(
                            at=round(self._now_s()) + stay,
                            type="incident_closed",
                            id=a.incident,
                            reason="done on scene",
                        )
                        self._push(self.injects, now + timedelta(seconds=stay), (-1, done))
                    if target is Status.EN_ROUTE:
                        travel = round(a.travel_minutes * 60 * a.decision.travel_factor, 3)
                        nxt = _Act(
                            "on_scene",
                            a.assignment,
                            a.person,
                            a.incident,
                            a.decision,
                            a.travel_minutes,
                        )
                        self._push(self.acts, now + timedelta(seconds=travel), nxt)
        except DomainError as exc:
            # The offer expired or was withdrawn before the answer, or the person was released
            # on the way: what a real volunteer's client would be told with a 409.
            if a.step in ("accept", "decline") and "expired" in str(exc):
                self.counts["answered_late"] += 1
            else:
                self.counts["steps_overtaken"] += 1

    # ---- loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        end = self.s.end
        same_instant = 0
        last: datetime | None = None
        ctl = self.options.control
        known: list[datetime | None] | None = None  # the engine's next due time, if still true
        while True:
            if ctl is not None and ctl.stop_requested():
                self.stopped_s = self._now_s()
                break
            cands = [end]
            if self.injects:
                cands.append(self.injects[0].at)
            if self.acts:
                cands.append(self.acts[0].at)
            due = known[0] if known is not None else await self.engine.next_due()
            known = None
            if due is not None:
                cands.append(due)
            target = max(min(cands), self.clock.now())
            if target == last:
                same_instant += 1
                if same_instant > 20:  # something keeps asking for "now": let time move
                    target = target + timedelta(seconds=1)
            else:
                same_instant = 0
            if target > end:
                break
            await self.clock.advance_to(target)
            last = self.clock.now()  # a steered clock (drills.service) may stop short of target
            now = self.clock.now()
            while self.injects and self.injects[0].at <= now:
                k, inj = heapq.heappop(self.injects).what
                await self.apply(k, inj)
            # Offers come only from plans, so the outbox is read after the engine ran (messages
            # that injects or answers cause are recorded then, or at the end, in outbox order).
            while self.acts and self.acts[0].at <= now:
                await self.act(heapq.heappop(self.acts).what)
            # Like a live waker armed at next_due: the engine runs only when something is due.
            if due is not None and due <= now:
                report = await self.engine.run_due()
                await self.read_outbox()
                if ctl is None:  # nobody else writes before the next step: no need to ask again
                    known = [report.next_due]
            if self.options.progress is not None:
                frac = (now - self.s.start) / (end - self.s.start) if end > self.s.start else 1.0
                self.options.progress(frac, f"{self.engine.plans_made} plans")
            if ctl is not None:
                await ctl.after_step()
            if now >= end and not (self.injects and self.injects[0].at <= end):
                break
        await self.read_outbox()

    # ---- records -----------------------------------------------------------------------------

    async def records(self) -> tuple[metrics.Recorded, dict[str, Any]]:
        async with self.pool.acquire() as con:
            asg = await con.fetch(
                "SELECT * FROM assignments ORDER BY person_id, incident_id, skill, proposed_at, id"
            )
            allocs = await con.fetch(
                "SELECT incident_id, item, quantity, status, reserved_at FROM allocations"
                " ORDER BY reserved_at, incident_id, item, depot_id, id"
            )
            plans = await con.fetch(
                "SELECT id, created_at, trigger, status, method, solve_seconds, offers_made,"
                " withdrawn, allocations_made, result FROM plans ORDER BY id"
            )
        t = self._t
        assignments = [
            metrics.AssignmentRec(
                r["person_id"],
                r["incident_id"],
                r["skill"],
                r["status"],
                t(r["offered_at"]),
                t(r["accepted_at"]),
                t(r["declined_at"]),
                t(r["expired_at"]),
                t(r["en_route_at"]),
                t(r["on_scene_at"]),
                t(r["released_at"]),
                t(r["withdrawn_at"]),
                t(r["cancelled_at"]),
            )
            for r in asg
        ]
        final_unmet: list[dict[str, Any]] = []
        if plans:
            for g in plans[-1]["result"]["groups"]:
                final_unmet += g["plan"]["unmet"]
        rec = metrics.Recorded(
            end_s=float(self.s.duration if self.stopped_s is None else self.stopped_s),
            step_s=float(self.s.coverage_step),
            incidents=list(self.incidents.values()),
            assignments=assignments,
            allocations=[
                {
                    "incident": r["incident_id"],
                    "item": r["item"],
                    "quantity": int(r["quantity"]),
                    "status": r["status"],
                    "reserved_s": t(r["reserved_at"]),
                }
                for r in allocs
            ],
            plans=[
                {
                    "at_s": t(p["created_at"]),
                    "trigger": p["trigger"],
                    "method": p["method"],
                    "offers": p["offers_made"],
                    "withdrawn": p["withdrawn"],
                    "allocations": p["allocations_made"],
                }
                for p in plans
            ],
            messages=self.messages,
            injects=self.inject_log,
            final_unmet=final_unmet,
            responders=dict(self.counts),
            objectives=list(self.s.objectives),
        )
        solve = [
            {"at_s": t(p["created_at"]), "seconds": round(float(p["solve_seconds"]), 4)}
            for p in plans
        ]
        return rec, {"plans": solve}


class _Collections:
    """Drills running in this process; while any runs, the cyclic garbage collector runs less.

    A drill allocates millions of short-lived containers (world views, snapshots, plans) that
    reference counting frees; with the default thresholds the cyclic collector still ran about
    5,000 times in the 24-hour benchmark, full passes over a heap holding the whole roster
    included: about a sixth of the run. The previous thresholds return when the last drill ends.
    """

    running = 0
    saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    if _Collections.running == 0:
        _Collections.saved = g0, g1, g2 = gc.get_threshold()
        gc.set_threshold(max(g0, 50_000), max(g1, 20), max(g2, 100))
    _Collections.running += 1
    try:
        yield
    finally:
        _Collections.running -= 1
        if _Collections.running == 0:
            gc.set_threshold(*_Collections.saved)


async def _keep_session(con: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (one round trip per acquire, thousands per drill).

    An open transaction is still rolled back; the drill's connections keep no other session
    state (no LISTEN, advisory lock or SET), and the search path is the pool's own setting.
    """


def _unknown(what: str, ident: str) -> DomainError:
    from dispatch.errors import NotFound

    return NotFound(f"no {what} {ident!r}")


async def run_drill(
    dsn: str, scenario: Scenario, base_dir: Path, options: DrillOptions | None = None
) -> DrillResult:
    """Run ``scenario`` in a fresh ``drill_*`` schema of the database at ``dsn``."""
    options = options or DrillOptions()
    seed = scenario.seed if options.seed is None else options.seed
    schema = options.schema or isolation.new_schema_name()
    wall0 = time.perf_counter()
    admin = await asyncpg.connect(dsn)
    try:
        await isolation.create_schema(admin, schema)
    finally:
        await admin.close()
    pool = await create_pool(
        dsn,
        schema=schema,
        min_size=1,
        max_size=4,
        reset=_keep_session,
        # A drill schema is thrown away at the end: no need to wait for each commit's WAL flush.
        settings={"synchronous_commit": "off"},
    )
    try:
        async with pool.acquire() as con:
            roster = await isolation.load_roster(con, schema, scenario, base_dir)
        t_setup = time.perf_counter() - wall0
        drill = _Drill(scenario, pool, schema, seed, options)
        with _fewer_collections():
            await drill.setup()
            t_loop0 = time.perf_counter()
            await drill.run()
            t_loop = time.perf_counter() - t_loop0
            rec, run_extra = await drill.records()
    finally:
        await pool.close()
        if not options.keep:
            admin = await asyncpg.connect(dsn)
            try:
                await isolation.drop_schema(admin, schema)
            finally:
                await admin.close()
    figures = await asyncio.to_thread(metrics.compute, rec)  # CPU work: off the event loop
    report = {
        "format": "muster-drill-report/1",
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "start": scenario.start.isoformat(),
            "duration_s": scenario.duration,
            "seed": seed,
            "policy": options.policy,
            "roster": roster,
            "injects": len(scenario.timeline),
        },
        **figures,
    }
    if drill.stopped_s is not None:
        report["stopped_at_s"] = drill.stopped_s
    seconds = [p["seconds"] for p in run_extra["plans"]]
    run = {
        "schema": schema,
        "kept": options.keep,
        "speed": "max" if options.speed is None else f"x{options.speed:g}",
        "wall_seconds": round(time.perf_counter() - wall0, 2),
        "setup_seconds": round(t_setup, 2),
        "loop_seconds": round(t_loop, 2),
        "solve_seconds": {
            "plans": len(seconds),
            "total": round(sum(seconds), 3),
            **metrics.summary_stats(s * 1000 for s in seconds),
            "unit": "ms per re-plan (solver only)",
        },
        "engine_seconds": _engine_seconds(drill.engine),
        "plans": run_extra["plans"],
    }
    return DrillResult(report, run, schema)


def _percentiles(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50 / p90 / p99 / max in milliseconds (nearest rank)."""
    v = sorted(seconds)
    return {
        name: round(metrics.nearest_rank(v, p) * 1000, 1) if v else None
        for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }


def _engine_seconds(engine: Engine) -> dict[str, Any]:
    """Wall-clock seconds of the engine's re-plans by step: world read, planner, storing."""
    t = engine.timings
    steps = {"load": t.load, "solve": t.solve, "apply": t.apply}
    out: dict[str, Any] = {k: round(sum(v), 3) for k, v in steps.items()}
    total = [a + b + c for a, b, c in zip(t.load, t.solve, t.apply, strict=True)]
    out["per_plan_ms"] = {k: _percentiles(v) for k, v in {**steps, "total": total}.items()}
    out["world_cache"] = {
        "roster_reads": engine.world_cache.reads,
        "rows_parsed": engine.world_cache.parsed,
    }
    return out
