"""Drill benchmark: ``python -m bench.drill_24h [--people 2000] [--injects 1000] [--hours 24]``.

A generated 24-hour scenario on the demo city (1,000 injects: incidents reported, updated and
closed, level changes, slowed roads, unavailable volunteers, destroyed stock, lost depots) with
2,000 simulated responders, run at ``--speed max``. Prints the wall time against the 60 s target,
the CPU time of this process and of the PostgreSQL server (the drill is sequential, so the two
add up to about the wall time; the machine's load average is printed too), re-plans with what
asked for them, offers, each re-plan's duration (p50 / p99 / max) split into world read, planner
and storing, and as the same-run baseline one world read with a warm and with a cold cache
(what every re-plan cost before the roster was cached).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import fresh_database
from dispatch.demo_city import DISTRICTS
from dispatch.storage import world as world_store
from dispatch.storage.database import create_pool
from drills import isolation
from drills.runner import DrillOptions, run_drill
from drills.scenario import Scenario, format_offset

TARGET_S = 60.0
SKILLS = ["first_aid", "driver", "logistics", "search_rescue", "elderly_care", "cook"]


def scenario(people: int, injects: int, hours: int, seed: int = 7) -> Scenario:
    """A day of mixed incidents across the city; ``injects`` timeline entries in all."""
    rng = random.Random(seed)
    end = hours * 3600
    districts = [d for d, _ in DISTRICTS]
    timeline: list[dict[str, Any]] = []
    for k, d in enumerate(districts):
        level = ["III", "IV"][k % 2]
        timeline.append(
            {
                "at": "+00:00:00",
                "type": "mode_changed",
                "jurisdiction": d,
                "mode": "emergency",
                "level": level,
                "reason": "bench",
            }
        )
    n_other = int(injects * 0.1)
    n_inc = (injects - len(timeline) - n_other) * 10 // 26  # reported : updated : closed = 10:6:10
    open_: list[tuple[str, int]] = []
    for k in range(n_inc):
        at = int((k + rng.random()) * (end - 3600) / n_inc)
        d = rng.choice(districts)
        iid = f"b-{k:04d}"
        demands = [
            {"skill": s, "count": rng.randint(1, 3)} for s in rng.sample(SKILLS, rng.randint(1, 2))
        ]
        supplies = {"water_l": rng.randint(50, 300)} if rng.random() < 0.4 else {}
        timeline.append(
            {
                "at": format_offset(at),
                "type": "incident_reported",
                "id": iid,
                "title": f"Incident {k}",
                "jurisdiction": f"{d}-{rng.randint(1, 3)}-{rng.randint(1, 3)}",
                "priority": rng.randint(1, 5),
                "demands": demands,
                "supplies": supplies,
            }
        )
        open_.append((iid, at))
    for iid, at in rng.sample(open_, len(open_) * 6 // 10):
        timeline.append(
            {
                "at": format_offset(min(end, at + rng.randint(600, 3600))),
                "type": "incident_updated",
                "id": iid,
                "priority": rng.randint(1, 5),
            }
        )
    for iid, at in open_:
        timeline.append(
            {
                "at": format_offset(min(end, at + rng.randint(3600, 4 * 3600))),
                "type": "incident_closed",
                "id": iid,
            }
        )
    while len(timeline) < injects:
        at = rng.randint(0, end - 3600)
        d = rng.choice(districts)
        kind = rng.random()
        if kind < 0.45:
            timeline.append(
                {
                    "at": format_offset(at),
                    "type": "travel_slowed",
                    "jurisdiction": f"{d}-{rng.randint(1, 3)}",
                    "factor": round(rng.uniform(1.2, 2.5), 2),
                    "until": format_offset(at + 3600),
                }
            )
        elif kind < 0.75:
            timeline.append(
                {
                    "at": format_offset(at),
                    "type": "volunteers_unavailable",
                    "jurisdiction": d,
                    "share": 0.2,
                    "until": format_offset(at + 2 * 3600),
                }
            )
        elif kind < 0.95:
            timeline.append(
                {
                    "at": format_offset(at),
                    "type": "stock_destroyed",
                    "depot": f"depot-{d}",
                    "share": 0.05,
                }
            )
        else:
            timeline.append(
                {
                    "at": format_offset(at),
                    "type": "mode_changed",
                    "jurisdiction": d,
                    "mode": "emergency",
                    "level": rng.choice(["III", "IV"]),
                    "reason": "bench",
                }
            )
    return Scenario.model_validate(
        {
            "name": "bench-24h",
            "start": datetime(2026, 7, 18, 0, 0, tzinfo=UTC),
            "duration": format_offset(end),
            "seed": seed,
            "roster": {"generated": {"people": people, "seed": 3}},
            "engine": {"solve_time_limit_s": 2.0, "debounce_s": 1.0},
            "coverage_step": "+00:15:00",
            "timeline": timeline[:injects],
        }
    )


def _cause(reason: str) -> str:
    """The kind of a re-plan request, from its stored reason text."""
    for needle, kind in (
        ("declined", "answers (declines)"),
        ("expired", "offers expired"),
        ("incident", "incidents reported/updated/closed"),
        ("mode of", "level changes"),
        ("roads", "roads slowed/reopened"),
        ("depot", "depots and stock"),
        ("stock", "depots and stock"),
    ):
        if needle in reason:
            return kind
    return "other"


async def _server_pid(dsn: str) -> int | None:
    """The PostgreSQL postmaster's pid when the server runs on this machine (else None)."""
    con = await asyncpg.connect(dsn)
    try:
        data = await con.fetchval("SELECT current_setting('data_directory')")
        return int((Path(data) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, asyncpg.PostgresError):
        return None
    finally:
        await con.close()


def _server_cpu(pid: int | None) -> float | None:
    """CPU seconds of the server so far: the postmaster, its finished and its live children."""
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: int | str) -> list[str]:
        text = Path(f"/proc/{p}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()

    try:
        own = stat(pid)
        total = sum(int(x) for x in own[11:15])  # utime stime cutime cstime
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(pid):
                try:
                    f = stat(entry.name)
                except OSError:
                    continue
                if f[1] == str(pid):
                    total += int(f[11]) + int(f[12])
        return total / tick
    except OSError:
        return None


async def run(people: int, injects: int, hours: int, policy: str) -> None:
    sc = scenario(people, injects, hours)
    async with fresh_database("bench_drill") as dsn:
        pid = await _server_pid(dsn)
        cpu0, srv0 = time.process_time(), _server_cpu(pid)
        t0 = time.perf_counter()
        result = await run_drill(
            dsn,
            sc,
            Path("."),
            DrillOptions(policy=policy, keep=True),  # type: ignore[arg-type]
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        srv1 = _server_cpu(pid)
        srv = None if srv0 is None or srv1 is None else srv1 - srv0
        pool = await create_pool(dsn, schema=result.schema, min_size=1, max_size=2)
        try:
            async with pool.acquire() as con:
                causes: Counter[str] = Counter()
                for r in await con.fetch("SELECT trigger FROM plans"):
                    for reason in r["trigger"].split("; "):
                        causes[
                            "cadence (nothing asked)" if reason == "cadence" else _cause(reason)
                        ] += 1
                snap_mb = await con.fetchval(
                    "SELECT coalesce(sum(coalesce(pg_column_size(snapshot_z), pg_column_size(snapshot))),"
                    " 0) / 1e6 FROM plans"
                )
                cache = world_store.WorldCache()
                t1 = time.perf_counter()
                await world_store.load(con, sc.end, cache)
                cold = time.perf_counter() - t1
                t2 = time.perf_counter()
                await world_store.load(con, sc.end, cache)
                warm = time.perf_counter() - t2
        finally:
            await pool.close()
            admin = await asyncpg.connect(dsn)
            await isolation.drop_schema(admin, result.schema)
            await admin.close()
    r, run_ = result.report, result.run
    plans = r["replans"]["count"]
    eng = run_["engine_seconds"]
    ms = eng["per_plan_ms"]
    print(
        f"## Drill benchmark: {hours} h simulated, {len(sc.timeline)} injects, {people} responders,"
        f" policy {policy}, --speed max\n"
    )
    print("| measure | value |")
    print("|---|---:|")
    verdict = "met" if wall < TARGET_S else "NOT met"
    print(
        f"| **wall time, whole drill (s)** | **{wall:.1f}** (target < {TARGET_S:.0f} s: {verdict}) |"
    )
    print(f"| of which: schema + roster setup (s) | {run_['setup_seconds']:.1f} |")
    print(f"| of which: simulation loop (s) | {run_['loop_seconds']:.1f} |")
    print(f"| CPU: this process, all threads (s) | {cpu:.1f} |")
    if srv is not None:
        print(f"| CPU: the PostgreSQL server (s) | {srv:.1f} |")
    print(f"| machine load average (1 / 5 min) at the end | {_load()} |")
    print(f"| injects / simulated responders | {len(sc.timeline)} / {people} |")
    print(f"| re-plans | {plans} ({r['replans']['by_trigger']}) |")
    print(f"| re-plans per simulated hour | {plans / hours:.1f} |")
    for cause, n in causes.most_common():
        print(f"| requests coalesced into those re-plans: {cause} | {n} |")
    print(f"| offers / accepted | {r['offers']['count']} / {r['offers']['accepted']} |")
    print(
        f"| messages (all exercise-marked) | {r['messages']['count']}"
        f" ({r['messages']['not_exercise_marked'] == 0}) |"
    )
    print(f"| incidents | {r['summary']['incidents']} |")
    for step, label in (
        ("total", "one re-plan, all steps"),
        ("load", "world read"),
        ("solve", "planner (snapshots + solver, in the executor)"),
        ("apply", "storing and applying the plan"),
    ):
        m = ms[step]
        print(f"| {label}: p50 / p99 / max (ms) | {m['p50']} / {m['p99']} / {m['max']} |")
    print(
        f"| engine time by step: read / plan / apply (s) | {eng['load']:.1f} / {eng['solve']:.1f}"
        f" / {eng['apply']:.1f} |"
    )
    print(
        f"| roster reads / rows parsed (world cache) | {eng['world_cache']['roster_reads']}"
        f" / {eng['world_cache']['rows_parsed']} |"
    )
    print(f"| stored plan snapshots (MB) | {snap_mb:.1f} |")
    print(f"| baseline: one world read with a warm cache (ms) | {warm * 1000:.0f} |")
    print(f"| baseline: one world read, cold cache (ms) | {cold * 1000:.0f} |")
    print(
        f"| baseline: cold reads × re-plans (s, the cost without the cache) | {cold * plans:.0f} |"
    )


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} / {five:.2f} ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drill_24h", description=__doc__)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--injects", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--policy", choices=["optimised", "greedy"], default="optimised")
    args = parser.parse_args(argv)
    asyncio.run(run(args.people, args.injects, args.hours, args.policy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
