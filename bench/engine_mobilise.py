"""Mobilisation benchmark: ``python -m bench.engine_mobilise [--people 5000] [--incidents 300]``.

Prints (1) the time from "a district goes to emergency level I with N incidents open and M people
on the roster" to every offer stored, split into world loading, solving and writing, with the
pure solver on the same snapshot as the same-run baseline; (2) plans per second under a stream
of incident updates (each round: a burst of demand changes, then one debounced re-plan).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import fresh_database
from dispatch.access import Principal, Role
from dispatch.audit import AuditContext
from dispatch.clock import ManualClock
from dispatch.demo_city import generate
from dispatch.modes import ModeChange
from dispatch.services.engine import Engine, EngineConfig, solve_snapshot
from dispatch.storage import plans as plans_store
from dispatch.storage import world as world_store
from dispatch.storage.database import create_pool
from dispatch.storage.seed import load_city

SKILLS = ["first_aid", "driver", "logistics", "search_rescue", "elderly_care"]
ADMIN = Principal("bench", Role.ADMIN, None, None)


def incidents(n: int, district: str, city: Any, seed: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    leaves = [j for j in city.communities() if j["code"].startswith(district + "-")]
    rows = []
    for k in range(n):
        j = rng.choice(leaves)
        lat = j["centre"]["lat"] + rng.gauss(0, 0.01)
        lon = j["centre"]["lon"] + rng.gauss(0, 0.01)
        demands = [
            {"skill": s, "count": rng.randint(1, 4), "min": 1}
            for s in rng.sample(SKILLS, rng.randint(1, 2))
        ]
        supplies = {"water_l": rng.randint(50, 400)} if rng.random() < 0.5 else {}
        rows.append(
            (
                f"i{k:04d}",
                "flood",
                f"Incident {k}",
                lat,
                lon,
                j["code"],
                rng.randint(1, 5),
                demands,
                supplies,
            )
        )
    return rows


async def run(people: int, n_incidents: int, rounds: int, time_limit: float) -> None:
    async with fresh_database("bench_engine") as dsn:
        pool = await create_pool(dsn, min_size=2, max_size=6)
        ctx = AuditContext.system("bench")
        city = generate(people, seed=3)
        async with pool.acquire() as con:
            await load_city(con, city, ctx)
            await con.executemany(
                "INSERT INTO incidents (id, type, title, lat, lon, jurisdiction_code, priority,"
                " status, demands, supplies) VALUES ($1,$2,$3,$4,$5,$6,$7,'active',$8,$9)",
                incidents(n_incidents, "pudong", city, 5),
            )
        # A Saturday evening, so volunteers' windows are open as they would be in a real call-out.
        clock = ManualClock(datetime(2026, 7, 18, 19, 0, tzinfo=UTC))
        engine = Engine(
            pool, clock, config=EngineConfig(solve_time_limit_s=time_limit, debounce_s=0)
        )
        from dispatch.access import Principal, Role
        from dispatch.services.mobilisation import change_mode

        root = Principal("bench", Role.ADMIN, None, None)
        await engine.warm_up()  # as a running service would have done at start
        t0 = time.perf_counter()
        async with pool.acquire() as con:
            await change_mode(
                con,
                root,
                ctx,
                "pudong",
                ModeChange.model_validate(
                    {"mode": "emergency", "level": "I", "reason": "bench"}, strict=False
                ),
                None,
                clock.now(),
                exercise=False,
                debounce_s=0,
            )
        report = await engine.run_due()
        total = time.perf_counter() - t0
        assert report.plan_id is not None, "the engine made no plan"
        async with pool.acquire() as con:
            t_load0 = time.perf_counter()
            await world_store.load(con, clock.now(), engine.world_cache)  # as the engine reads
            t_load = time.perf_counter() - t_load0
            stored = await con.fetchval("SELECT count(*) FROM assignments WHERE status = 'offered'")
            plan = await con.fetchrow(
                "SELECT solve_seconds FROM plans WHERE id = $1", report.plan_id
            )
            snapshot = await plans_store.snapshot(con, ADMIN, report.plan_id)
        # Baseline: the pure solver alone on the very snapshots this plan used.
        t_b = time.perf_counter()
        for g in snapshot["groups"]:
            solve_snapshot(g["snapshot"], time_limit, 0)
        baseline = time.perf_counter() - t_b
        demand = sum(
            d["count"] for row in incidents(n_incidents, "pudong", city, 5) for d in row[7]
        )
        print(f"## Mobilisation: {people} people, {n_incidents} incidents, district to level I\n")
        print("| measure | value |")
        print("|---|---:|")
        print(f"| people slots demanded | {demand} |")
        print(f"| offers stored | {stored} |")
        print(f"| mode change → all offers stored (s) | {total:.2f} |")
        print(f"| of which: world load (s, measured separately) | {t_load:.2f} |")
        print(f"| of which: solving in the engine (s) | {plan['solve_seconds']:.2f} |")
        print(f"| baseline: pure solver on the same snapshots (s) | {baseline:.2f} |")
        print(f"| target | ≤ 2 s: {'met' if total <= 2 else 'NOT met'} |")

        # Plans per second under a stream of incident updates.
        rng = random.Random(9)
        ids = [f"i{k:04d}" for k in range(n_incidents)]
        updates = 0
        t1 = time.perf_counter()
        for _ in range(rounds):
            async with pool.acquire() as con:
                for iid in rng.sample(ids, 10):
                    await con.execute(
                        "UPDATE incidents SET priority = $2, version = version + 1 WHERE id = $1",
                        iid,
                        rng.randint(1, 5),
                    )
                    updates += 1
                from dispatch.storage import engine as engine_store

                await engine_store.request_replan(con, clock.now(), "bench update", 0)
            clock.advance(timedelta(seconds=1))
            await engine.run_due()
        elapsed = time.perf_counter() - t1
        print(f"\n## Re-planning under updates: {rounds} rounds of 10 incident updates\n")
        print("| measure | value |")
        print("|---|---:|")
        print(f"| plans | {engine.plans_made - 1} |")
        print(f"| incident updates | {updates} |")
        print(f"| plans per second | {(engine.plans_made - 1) / elapsed:.2f} |")
        print(f"| mean seconds per re-plan (load + solve + write) | {elapsed / rounds:.2f} |")
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_mobilise", description=__doc__)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--time-limit", type=float, default=2.0)
    args = parser.parse_args(argv)
    asyncio.run(run(args.people, args.incidents, args.rounds, args.time_limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
