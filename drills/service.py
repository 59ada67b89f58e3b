"""The drill service: drills started through the trainer API run as background tasks of the
service process, on the same engine, storage and solver as ``muster drill run``.

One :class:`DrillService` per app instance (opened and closed in the app's ``cleanup_ctx``):

- **Lifecycle** (``created → running ⇄ paused → stopped | finished | failed | interrupted``) is
  a row in the live ``drills`` registry, changed in audited transactions
  (:mod:`dispatch.storage.drills`). The instance that starts a drill runs it and holds a
  PostgreSQL advisory lock on it on a dedicated connection; a trainer request that lands on
  another instance only changes the row, and the owner applies it within a tick.
- **Pause** freezes the simulated clock (:class:`DrillClock`), also in the middle of a paced wait,
  and holds the loop between two events. **Stop** ends the loop between two events; the report is
  still computed (a partial one, ``stopped_at_s``). Every end stores the report JSON and HTML.
- **Crashes**: a drill marked running whose advisory lock nobody holds has lost its instance; it
  is marked ``interrupted`` (at start-up and every ``sweep_s``) and its schema dropped.
- **Shutdown** stops the local drills cleanly (partial reports); those that do not end within
  ``stop_wait_s`` are cancelled and marked interrupted.
- **Live participation** (:mod:`drills.live`): messages to real participants are relayed to the
  live outbox after every step; their answers are applied by the drill loop between two events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dispatch import drills as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext
from dispatch.clock import Clock
from dispatch.errors import Conflict, FieldError, NotFound, ValidationFailed
from dispatch.storage import drills as store
from dispatch.storage.database import _init_connection
from dispatch.storage.jurisdictions import path_of
from drills import isolation, live
from drills.clock import SimClock
from drills.scenario import Scenario, ScenarioError, parse_scenario

log = logging.getLogger("muster.drills")

__all__ = ["BUNDLED", "DrillClock", "DrillService", "drill_connection"]

#: Bundled scenarios, by file stem (``urban_flood``).
BUNDLED = Path(__file__).resolve().parent / "scenarios"

_LOCK_NAMESPACE = 0x6D647231  # "mdr1": advisory locks held by the instance running a drill
_html_lock = threading.Lock()  # matplotlib's pyplot state is global


def _lock_key(drill_id: str) -> int:
    return int.from_bytes(hashlib.sha256(drill_id.encode()).digest()[:4], "big", signed=True)


@contextlib.asynccontextmanager
async def drill_connection(dsn: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose search path is the drill schema (for answers from real people)."""
    con = await asyncpg.connect(
        dsn,
        server_settings={
            "search_path": f"{isolation._q(schema)}, public",
            "application_name": "muster-drill",
        },
    )
    try:
        await _init_connection(con)
        yield con
    finally:
        await con.close()


# ---- the clock ----------------------------------------------------------------------------------

Job = Callable[[datetime], Awaitable[Any]]


class DrillClock(SimClock):
    """A simulated clock the service can pause, stop and wake, and that knows the simulated
    time *between* events (during a paced wait), so real answers are stamped when they come.

    Jobs (answers from real participants) are run by the drill loop inside :meth:`advance_to`,
    at the simulated time reached, and the loop is then let go to look again at what is due.
    """

    def __init__(self, start: datetime, speed: float | None) -> None:
        super().__init__(start, speed)
        self.running = asyncio.Event()
        self.running.set()
        self.stopping = False
        self._wake = asyncio.Event()
        self._pacing: tuple[datetime, float, datetime] | None = None  # sim, monotonic, target
        self._jobs: list[tuple[Job, asyncio.Future[Any]]] = []

    def current(self) -> datetime:
        """The simulated now, interpolated inside a paced wait."""
        p = self._pacing
        if p is None or self.speed is None:
            return self.now()
        sim0, mono0, target = p
        return min(target, sim0 + timedelta(seconds=(time.monotonic() - mono0) * self.speed))

    def _freeze(self) -> None:
        if self._pacing is not None:
            self.set(max(self.now(), self.current()))
            self._pacing = None

    def pause(self) -> None:
        """Freeze simulated time now; the loop holds at its next look."""
        self._freeze()
        self.running.clear()
        self._wake.set()

    def resume(self) -> None:
        self.running.set()
        self._wake.set()

    def stop(self) -> None:
        """Let go of any wait; the loop sees the stop between two events."""
        self.stopping = True
        self.running.set()
        self._wake.set()

    def poke(self) -> None:
        """Something changed outside the loop: let it look again at what is due."""
        self._wake.set()

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Have the loop run ``job(now)`` between two events; its result comes in the future."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, fut))
        self._wake.set()
        return fut

    def withdraw(self, fut: asyncio.Future[Any]) -> bool:
        """Take back a job the loop has not started; false when it is running or done."""
        for k, (_, f) in enumerate(self._jobs):
            if f is fut:
                del self._jobs[k]
                fut.cancel()
                return True
        return False

    def fail_jobs(self, exc: Exception) -> None:
        """The loop is gone: pending jobs get ``exc``."""
        jobs, self._jobs = self._jobs, []
        for _, fut in jobs:
            if not fut.done():
                fut.set_exception(exc)

    async def _drain(self) -> bool:
        jobs, self._jobs = self._jobs, []
        for job, fut in jobs:
            try:
                result = await job(self.now())
            except Exception as exc:  # the answer's own error (409, 404...) goes to its caller
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)
        return bool(jobs)

    async def wait_running(self) -> None:
        """Hold while paused (answers submitted meanwhile still run, at the frozen time)."""
        while not self.running.is_set() and not self.stopping:
            self._wake.clear()
            if await self._drain():
                continue
            await self._wake.wait()
        await self._drain()

    async def advance_to(self, when: datetime) -> None:
        """Move to ``when`` (paced at ×N); return early after a pause, stop, poke or job."""
        if await self._drain():
            return
        if self.speed is None:
            if when > self.now():
                self.set(when)
            return
        while self.now() < when and not self.stopping:
            if not self.running.is_set():
                await self.wait_running()
                continue
            self._wake.clear()
            if self._jobs:
                await self._drain()
                return
            self._pacing = (self.now(), time.monotonic(), when)
            real = (when - self.now()).total_seconds() / self.speed
            try:
                await asyncio.wait_for(self._wake.wait(), real)
            except TimeoutError:
                self._pacing = None
                self.set(when)
                return
            self._freeze()
            if self.running.is_set():
                await self._drain()
                return  # poke, job or stop: the loop looks again at what is due


# ---- one running drill ----------------------------------------------------------------------------


class _Run:
    """A drill this instance runs; the :class:`drills.runner.Control` of its loop."""

    def __init__(
        self,
        service: DrillService,
        row: Any,
        scenario: Scenario,
        speed: float | None,
    ) -> None:
        self.service = service
        self.id: str = row["id"]
        self.name: str = row["name"]
        self.schema: str = row["schema_name"]
        self.scenario = scenario
        self.speed = speed
        self.participants = frozenset(row["participants"])
        self.progress = 0.0
        self.stop_flag = False
        self.stop_note: str | None = None
        self.pokes = 0
        self.want_paused = False  # a pause can come before the loop has made its clock
        self.version: int = row["version"]  # the registry version this instance has applied
        self.task: asyncio.Task[None] | None = None
        self._clock: DrillClock | None = None
        self._decorate = live.decorator(
            self.id, self.name, speed or 1.0, self.sim_now, service.clock.now
        )

    # Control -------------------------------------------------------------------------------

    def clock(self, start: datetime, speed: float | None) -> SimClock:
        self._clock = DrillClock(start, speed)
        if self.want_paused:
            self._clock.pause()
        if self.stop_flag:
            self._clock.stop()
        return self._clock

    def stop_requested(self) -> bool:
        return self.stop_flag

    async def after_step(self) -> None:
        if self.participants:
            await self.service.relay(self)
        if self._clock is not None:
            await self._clock.wait_running()  # at ×max a pause holds the loop here

    # steering ------------------------------------------------------------------------------

    def on_progress(self, frac: float, _note: str) -> None:
        self.progress = max(0.0, min(1.0, frac))

    def fraction(self) -> float:
        """Share of the scenario's simulated time done (moves during paced waits too)."""
        total = self.scenario.duration
        done = (self.sim_now() - self.scenario.start).total_seconds()
        return max(self.progress, min(1.0, done / total)) if total > 0 else self.progress

    def sim_now(self) -> datetime:
        return self._clock.current() if self._clock is not None else self.scenario.start

    @property
    def paused(self) -> bool:
        return self.want_paused

    def pause(self) -> None:
        self.want_paused = True
        if self._clock is not None:
            self._clock.pause()

    def resume(self) -> None:
        self.want_paused = False
        if self._clock is not None:
            self._clock.resume()

    def request_stop(self, note: str | None = None) -> None:
        if not self.stop_flag:
            self.stop_flag = True
            self.stop_note = note
        if self._clock is not None:
            self._clock.stop()

    def poke(self) -> None:
        if self._clock is not None:
            self._clock.poke()

    async def submit(self, job: Job, timeout_s: float) -> Any:
        """Run ``job`` in the drill loop between two events."""
        if self._clock is None or self.stop_flag:
            raise Conflict("the drill is not taking answers now")
        clock = self._clock
        fut = clock.submit(job)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            if clock.withdraw(fut):
                raise Conflict("the drill did not take the answer in time; try again") from None
            return await fut  # already being applied: its outcome is the answer


@dataclass(frozen=True)
class Prepared:
    """A validated create request."""

    scenario: Scenario
    text: str
    source: str
    base_dir: Path
    seed: int
    speed: float | None
    scope_code: str | None


# ---- the service --------------------------------------------------------------------------------


class DrillService:
    """Drills of this app instance (see the module docstring)."""

    def __init__(
        self,
        pool: Any,
        dsn: str,
        clock: Clock,
        *,
        max_running: int = 2,
        tick_s: float = 0.5,
        sweep_s: float = 10.0,
        stop_wait_s: float = 30.0,
        answer_timeout_s: float = 30.0,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.clock = clock
        self.instance = f"muster-{uuid.uuid4().hex[:12]}"
        self.max_running = max_running
        self.tick_s = tick_s
        self.sweep_s = sweep_s
        self.stop_wait_s = stop_wait_s
        self.answer_timeout_s = answer_timeout_s
        self._runs: dict[str, _Run] = {}
        self._lease: asyncpg.Connection | None = None
        self._lease_lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    # ---- lifecycle of the service ------------------------------------------------------------

    async def start(self) -> None:
        """Open the lease connection, mark drills of crashed instances, start ticking."""
        await self._connect_lease()
        await self.sweep()
        self._ticker = asyncio.create_task(self._tick_forever(), name="drills-ticker")

    async def close(self) -> None:
        """Stop every local drill cleanly (partial reports), then let go of everything."""
        self._closing = True
        runs = list(self._runs.values())
        for run in runs:
            run.request_stop("stopped because the service shut down")
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.stop_wait_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._lease is not None:
            with contextlib.suppress(Exception):
                await self._lease.close()
            self._lease = None

    @property
    def running(self) -> list[str]:
        """Ids of the drills this instance runs."""
        return sorted(self._runs)

    async def _connect_lease(self) -> None:
        self._lease = await asyncpg.connect(
            self.dsn, server_settings={"application_name": f"muster-drills:{self.instance}"}
        )
        # Locks died with a lost connection: take them again for the drills still running here.
        for drill_id in self._runs:
            await self._lease.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", _LOCK_NAMESPACE, _lock_key(drill_id)
            )

    async def _lease_call(self, sql: str, drill_id: str) -> Any:
        async with self._lease_lock:
            if self._lease is None or self._lease.is_closed():
                await self._connect_lease()
            assert self._lease is not None
            return await self._lease.fetchval(sql, _LOCK_NAMESPACE, _lock_key(drill_id))

    async def _try_lock(self, drill_id: str) -> bool:
        return bool(await self._lease_call("SELECT pg_try_advisory_lock($1, $2)", drill_id))

    async def _unlock(self, drill_id: str) -> None:
        with contextlib.suppress(Exception):
            await self._lease_call("SELECT pg_advisory_unlock($1, $2)", drill_id)

    async def sweep(self) -> list[str]:
        """Mark drills whose instance is gone (nobody holds their lock) as interrupted."""
        async with self.pool.acquire() as con:
            rows = await store.active(con)
        done = []
        for r in rows:
            if r["owner"] == self.instance or r["id"] in self._runs:
                continue  # ours (session advisory locks are re-entrant: never ask our own)
            if not await self._try_lock(r["id"]):
                continue
            try:
                async with self.pool.acquire() as con:
                    marked = await store.interrupt(
                        con,
                        r["id"],
                        self.clock.now(),
                        "the instance running this drill stopped before it ended",
                    )
                    if marked:
                        await isolation.drop_schema(con, r["schema_name"])
                        done.append(r["id"])
                        log.warning("drill %s interrupted (its instance is gone)", r["id"])
            finally:
                await self._unlock(r["id"])
        return done

    async def _tick_forever(self) -> None:
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._tick()
                if time.monotonic() - last_sweep >= self.sweep_s:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("drill service tick failed")

    async def _tick(self) -> None:
        """Publish progress; apply lifecycle changes made through other instances."""
        runs = dict(self._runs)
        if not runs:
            return
        async with self.pool.acquire() as con:
            for r in await store.watch(con, list(runs)):
                run = runs[r["id"]]
                if r["version"] > run.version:  # changed through another instance
                    run.version = r["version"]
                    if r["status"] == "paused" and not run.paused:
                        run.pause()
                    elif r["status"] == "running" and run.paused:
                        run.resume()
                    if r["stop_requested_at"] is not None or r["status"] not in (
                        "running",
                        "paused",
                    ):
                        run.request_stop()
                if r["pokes"] != run.pokes:
                    run.pokes = r["pokes"]
                    run.poke()
            readings = [
                (rid, run.fraction(), run.sim_now()) for rid, run in runs.items() if not run.paused
            ]
            await store.publish(con, readings, self.clock.now())

    # ---- trainer API ----------------------------------------------------------------------------

    async def prepare(
        self, con: asyncpg.Connection, who: Principal, body: dom.DrillCreate
    ) -> Prepared:
        """Validate a create request: scenario, speed, scope, participants (422/403)."""
        who.require("drill", Action.WRITE)
        if body.bundled is not None:
            path = BUNDLED / f"{body.bundled.replace('-', '_')}.yaml"
            if not path.is_file():
                known = sorted(p.stem for p in BUNDLED.glob("*.yaml"))
                raise ValidationFailed(
                    f"no bundled scenario {body.bundled!r}",
                    errors=[FieldError("/bundled", f"unknown; bundled: {', '.join(known)}")],
                )
            text, source, base_dir = path.read_text("utf-8"), f"bundled:{path.stem}", BUNDLED
        else:
            assert body.scenario is not None
            text, source, base_dir = body.scenario, "api", BUNDLED
        try:
            scenario = _parse(text, source)
        except ScenarioError as exc:
            raise scenario_problem(exc) from None
        if scenario.roster.file is not None and body.bundled is None:
            raise ValidationFailed(
                "roster files are not read through the API",
                errors=[
                    FieldError(
                        "/scenario",
                        "roster.file: use 'generated' or 'snapshot' (files are read by the CLI)",
                    )
                ],
            )
        try:
            speed = dom.parse_speed(body.speed)
        except ValueError as exc:
            raise ValidationFailed(str(exc), errors=[FieldError("/speed", str(exc))]) from None
        snapshot_path: str | None = None
        scope_code = who.scope_code
        if scenario.roster.snapshot is not None:
            code = scenario.roster.snapshot.jurisdiction
            snapshot_path = await path_of(con, code, loc="/scenario")
            who.require_scope(snapshot_path)  # a trainer copies only the roster in their scope
            scope_code = code
        await live.validate_participants(
            con,
            list(body.participants),
            snapshot_path=snapshot_path,
            scope_path=who.scope_path,
            speed=speed,
        )
        seed = scenario.seed if body.seed is None else body.seed
        return Prepared(scenario, text, source, base_dir, seed, speed, scope_code)

    async def create(
        self, con: asyncpg.Connection, who: Principal, ctx: AuditContext, body: dom.DrillCreate
    ) -> dict[str, Any]:
        """Validate and register a drill (status ``created``)."""
        p = await self.prepare(con, who, body)
        row = await store.create(
            con,
            who,
            ctx,
            drill_id=f"d-{uuid.uuid4().hex[:16]}",
            name=p.scenario.name,
            scenario=p.text,
            source=p.source,
            options={
                **dom.options_json(p.seed, p.speed, body.policy),
                "debounce_s": p.scenario.engine.debounce_s,
            },
            scope_code=p.scope_code,
            schema_name=isolation.new_schema_name(),
            participants=list(body.participants),
            now=self.clock.now(),
        )
        return self.view(row)

    def view(self, row: Any) -> dict[str, Any]:
        """The public view of a drill row, with this instance's fresher figures if it runs it."""
        out = store.to_json(row, sim_now=self.sim_now(row))
        run = self._runs.get(row["id"])
        if run is not None and row["status"] in ("running", "paused"):
            out["progress"] = round(run.fraction(), 4)
        return out

    def sim_now(self, row: Any) -> datetime | None:
        """A drill's simulated now: the local clock, or interpolated from the registry."""
        run = self._runs.get(row["id"])
        if run is not None:
            return run.sim_now()
        if row["status"] != "running":
            return row["sim_time"]  # type: ignore[no-any-return]
        speed = dom.parse_speed(row["options"]["speed"])
        return dom.sim_now(row["sim_time"], row["sim_wall_at"], speed, self.clock.now())

    async def act(
        self,
        con: asyncpg.Connection,
        who: Principal,
        ctx: AuditContext,
        drill_id: str,
        action: dom.Action,
    ) -> dict[str, Any]:
        """Start, pause, resume or stop a drill (409 when the action does not fit its state)."""
        now = self.clock.now()
        if action == "start":
            return await self._start(con, who, ctx, drill_id)
        run = self._runs.get(drill_id)
        sim = run.sim_now() if run is not None else None
        _, row = await store.transition(con, who, ctx, drill_id, action, now, sim_time=sim)
        if run is not None:
            run.version = max(run.version, row["version"])
            if action == "pause":
                run.pause()
            elif action == "resume":
                run.resume()
            elif action == "stop":
                run.request_stop()
        return self.view(row)

    async def _start(
        self, con: asyncpg.Connection, who: Principal, ctx: AuditContext, drill_id: str
    ) -> dict[str, Any]:
        if self._closing:
            raise Conflict("the service is shutting down")
        full = await store.get(con, who, drill_id, action=Action.WRITE, with_scenario=True)
        scenario = _parse(full["scenario"], full["source"])
        speed = dom.parse_speed(full["options"]["speed"])

        def room(_locked: Any) -> None:
            if len(self._runs) >= self.max_running:
                raise Conflict(
                    f"this instance already runs {len(self._runs)} drills (at most"
                    f" {self.max_running}); stop one or wait",
                    extra={"running": sorted(self._runs)},
                )

        if not await self._try_lock(drill_id):
            raise Conflict("another instance is starting this drill")
        try:
            _, row = await store.transition(
                con,
                who,
                ctx,
                drill_id,
                "start",
                self.clock.now(),
                owner=self.instance,
                sim_time=scenario.start,
                check=room,
            )
        except BaseException:
            await self._unlock(drill_id)
            raise
        run = _Run(self, row, scenario, speed)
        self._runs[drill_id] = run
        run.task = asyncio.create_task(
            self._run(run, full["options"], Path(BUNDLED)), name=f"drill-{drill_id}"
        )
        return self.view(row)

    # ---- running ----------------------------------------------------------------------------

    async def _run(self, run: _Run, options: dict[str, Any], base_dir: Path) -> None:
        from drills.report import render_html
        from drills.runner import DrillOptions, run_drill

        status = dom.DrillStatus.FINISHED
        report: dict[str, Any] | None = None
        figures: dict[str, Any] | None = None
        html: str | None = None
        error: str | None = None
        try:
            result = await run_drill(
                self.dsn,
                run.scenario,
                base_dir,
                DrillOptions(
                    seed=options["seed"],
                    speed=run.speed,
                    policy=options["policy"],
                    keep=True,  # dropped below, once the participants' part is read
                    progress=run.on_progress,
                    schema=run.schema,
                    control=run,
                ),
            )
            report, figures = result.report, result.run
            if run.participants:
                async with self.pool.acquire() as con:
                    rows = await store.participant_assignments(
                        con, run.schema, sorted(run.participants)
                    )
                report["participants"] = live.participant_figures(rows, run.scenario.start)
                report["live_relay"] = {"exercise_marked": True}
            if run.stop_flag or "stopped_at_s" in report:
                status = dom.DrillStatus.STOPPED
                error = run.stop_note
            html = await asyncio.to_thread(_render, render_html, report, figures)
        except asyncio.CancelledError:
            run.service._runs.pop(run.id, None)
            await self._end_cancelled(run)
            raise
        except Exception as exc:
            log.exception("drill %s failed", run.id)
            status = dom.DrillStatus.FAILED
            error = f"{type(exc).__name__}: {exc}"[:2000]
        await self._end(run, status, report, figures, html, error)

    async def _end(
        self,
        run: _Run,
        status: dom.DrillStatus,
        report: dict[str, Any] | None,
        figures: dict[str, Any] | None,
        html: str | None,
        error: str | None,
    ) -> None:
        self._runs.pop(run.id, None)
        if run._clock is not None:
            run._clock.fail_jobs(Conflict(f"the drill has ended ({status.value})"))
        # The schema goes first: once the registry says the drill ended, nothing of it is left
        # (a crash in between leaves a running row, which the sweep marks interrupted).
        await self._drop_schema(run)
        now = self.clock.now()
        try:
            async with self.pool.acquire() as con, con.transaction():
                await store.finish(
                    con,
                    run.id,
                    status,
                    now,
                    report=report,
                    run=figures,
                    html=html,
                    error=error,
                    sim_time=run.sim_now(),
                )
                await store.send_live(
                    con,
                    "drill_ended",
                    [
                        (pid, {"drill": {"id": run.id, "name": run.name, "status": status.value}})
                        for pid in sorted(run.participants)
                    ],
                    now,
                )
        except Exception:
            log.exception("could not record the end of drill %s", run.id)
        finally:
            await self._unlock(run.id)

    async def _end_cancelled(self, run: _Run) -> None:
        if run._clock is not None:
            run._clock.fail_jobs(Conflict("the drill was interrupted"))
        await self._drop_schema(run)
        with contextlib.suppress(Exception):
            async with self.pool.acquire() as con:
                await store.interrupt(
                    con, run.id, self.clock.now(), "cancelled: it did not stop in time"
                )
        await self._unlock(run.id)

    async def _drop_schema(self, run: _Run) -> None:
        try:
            async with self.pool.acquire() as con:
                await isolation.drop_schema(con, run.schema)
        except Exception:
            log.exception("could not drop the schema of drill %s", run.id)

    async def relay(self, run: _Run) -> int:
        """Copy new drill messages to real participants into the live outbox."""
        async with self.pool.acquire() as con:
            return await store.relay(
                con,
                run.id,
                run.schema,
                sorted(run.participants),
                self.clock.now(),
                run._decorate,
            )

    # ---- answers from real participants -------------------------------------------------------

    async def answer(
        self,
        con: asyncpg.Connection,
        who: Principal,
        ctx: AuditContext,
        drill_id: str,
        op: Callable[[asyncpg.Connection, AuditContext, datetime, float], Awaitable[Any]],
    ) -> Any:
        """Apply a participant's answer inside the drill, at the drill's simulated now.

        404 unless ``who`` takes part in the drill (nothing about other drills is revealed); 409
        unless the drill is running.
        """
        who.require("me", Action.WRITE)
        row = await self._participation(con, who, drill_id)
        if row["status"] != "running" or row["stop_requested_at"] is not None:
            state = "stopping" if row["stop_requested_at"] is not None else row["status"]
            raise Conflict(
                f"the drill is {state}; answers are taken only while it runs",
                extra={"drill_status": row["status"]},
            )
        schema = row["schema_name"]
        debounce_s = float(row["options"].get("debounce_s", 1.0))

        async def apply(now: datetime) -> Any:
            async with drill_connection(self.dsn, schema) as dcon:
                return await op(
                    dcon,
                    AuditContext(ctx.actor, ctx.actor_role, ctx.request_id, at=now),
                    now,
                    debounce_s,
                )

        run = self._runs.get(drill_id)
        if run is not None:
            return await run.submit(apply, self.answer_timeout_s)
        if row["owner"] == self.instance:
            raise Conflict("the drill is ending; answers are no longer taken")
        now = self.sim_now(row)
        assert now is not None
        out = await apply(now)
        await store.poke(con, drill_id)  # the owner wakes its loop within a tick
        return out

    async def _participation(self, con: asyncpg.Connection, who: Principal, drill_id: str) -> Any:
        row = await store.get_any(con, drill_id)
        if (
            row is None
            or who.person_id is None
            or not await store.is_participant(con, drill_id, who.person_id)
        ):
            raise NotFound(f"no drill {drill_id!r}")
        return row

    async def participant_read(
        self,
        con: asyncpg.Connection,
        who: Principal,
        drill_id: str,
        op: Callable[[asyncpg.Connection], Awaitable[Any]],
    ) -> Any:
        """Read the caller's own part of a drill that is under way (404 unless a participant)."""
        who.require("me", Action.READ)
        row = await self._participation(con, who, drill_id)
        if row["status"] not in ("running", "paused"):
            raise Conflict(
                f"the drill is {row['status']}; its records are in the report",
                extra={"drill_status": row["status"]},
            )
        async with drill_connection(self.dsn, row["schema_name"]) as dcon:
            return await op(dcon)


def _parse(text: str, source: str) -> Scenario:
    """A stored or submitted scenario. Only a bundled one may read files (a roster file, a
    replayed CSV), relative to the bundled directory; scenario text from the API reads none."""
    if source.startswith("bundled:"):
        return parse_scenario(text, source=source, base_dir=BUNDLED)
    return parse_scenario(text, source="scenario")


def _render(render: Callable[..., str], report: dict[str, Any], figures: Any) -> str:
    with _html_lock:
        return render(report, figures)


def scenario_problem(exc: ScenarioError) -> ValidationFailed:
    """A malformed scenario as a 422 naming each field and its line."""
    issues = [{"field": i.path, "line": i.line, "msg": i.msg} for i in exc.issues]
    return ValidationFailed(
        "the scenario is invalid",
        errors=[
            FieldError(
                "/scenario",
                f"line {i.line if i.line is not None else '?'}: {i.path}: {i.msg}",
                "scenario",
            )
            for i in exc.issues
        ],
        extra={"scenario_issues": issues},
    )
