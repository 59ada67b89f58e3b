"""Benchmark: ``python -m solver.bench [--sizes S,M,L,XL] [--quick]``.

Generates seeded synthetic cities, solves each with and without minimum crews and a locked plan
in force, and prints a Markdown table: wall seconds of ``solve`` (model build included), the
plan's covered weight and minutes, greedy closest-available's, the bound, the gap and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass

from solver.snapshot import parse_snapshot
from solver.solve import solve
from solver.synth import synthetic_city

__all__ = ["SIZES", "main", "run"]

SIZES: dict[str, tuple[int, int]] = {
    "S": (500, 50),
    "M": (2_000, 200),
    "L": (5_000, 300),
    "XL": (20_000, 1_000),
}
# variant: (min crews, locked/previous plan, demand load)
VARIANTS: dict[str, tuple[bool, bool, float]] = {
    "plain": (False, False, 1.0),
    "crew+locks": (True, True, 2.5),
}
HEADER = (
    "| size | people×incidents | variant | wall s | method | status | covered weight | minutes "
    "| greedy covered | greedy minutes | bound | gap % | peak RSS MiB |\n"
    "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
)


@dataclass(frozen=True, slots=True)
class Row:
    """One measured benchmark cell."""

    size: str
    people: int
    incidents: int
    variant: str
    seconds: float
    method: str
    status: str
    covered: int
    minutes: float
    greedy_covered: int
    greedy_minutes: float
    bound: int
    gap: float
    rss_mib: float

    def markdown(self) -> str:
        """The row as a Markdown table line."""
        return (
            f"| {self.size} | {self.people:,}×{self.incidents:,} | {self.variant} "
            f"| {self.seconds:.2f} | {self.method} | {self.status} | {self.covered:,} "
            f"| {self.minutes:,.1f} | {self.greedy_covered:,} | {self.greedy_minutes:,.1f} "
            f"| {self.bound:,} | {self.gap:.3f} | {self.rss_mib:,.0f} |"
        )


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(size: str, variant: str, *, seed: int, time_limit_s: float) -> Row:
    """Generate one city, solve it, and measure."""
    people, incidents = SIZES[size]
    crew, locks, load = VARIANTS[variant]
    snap = parse_snapshot(
        synthetic_city(people, incidents, seed=seed, min_crew=crew, locks=locks, load=load)
    )
    start = time.perf_counter()
    plan = solve(snap, time_limit_s=time_limit_s, seed=seed)
    seconds = time.perf_counter() - start
    return Row(
        size=size,
        people=people,
        incidents=incidents,
        variant=variant,
        seconds=seconds,
        method=plan.stats.method,
        status=plan.stats.status,
        covered=plan.objective.covered_weight,
        minutes=plan.objective.penalised_minutes,
        greedy_covered=plan.stats.greedy_covered_weight,
        greedy_minutes=plan.stats.greedy_penalised_minutes,
        bound=plan.stats.best_bound,
        gap=plan.stats.gap_percent,
        rss_mib=peak_rss_mib(),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the Markdown table; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m solver.bench", description=__doc__)
    parser.add_argument("--sizes", default="S,M,L,XL", help="comma-separated of S,M,L,XL")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="plain,crew+locks")
    parser.add_argument("--quick", action="store_true", help="only S and M")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=5.0, dest="time_limit")
    args = parser.parse_args(argv)
    sizes = ["S", "M"] if args.quick else [s.strip().upper() for s in args.sizes.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    bad = [s for s in sizes if s not in SIZES] + [v for v in variants if v not in VARIANTS]
    if bad:
        parser.error(f"unknown size or variant: {', '.join(bad)}")
    # Smallest first, so the monotone peak RSS of a row is that of the largest size so far.
    sizes.sort(key=lambda s: SIZES[s][0] * SIZES[s][1])
    print(HEADER, flush=True)
    total = time.perf_counter()
    for size in sizes:
        for variant in variants:
            row = run(size, variant, seed=args.seed, time_limit_s=args.time_limit)
            print(row.markdown(), flush=True)
    print(
        f"\nseed {args.seed}, time limit {args.time_limit:g} s, total {time.perf_counter() - total:.0f} s; "
        "minutes = travel + reassignment penalties; bound = upper bound on covered weight; "
        "peak RSS is the process high-water mark so far.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
