"""``muster drill run SCENARIO.yaml`` and ``muster drill compare A.json B.json``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muster drill", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("run", help="run a scenario on simulated time; write an after-action report")
    p.add_argument("scenario", help="scenario YAML file (see drills/scenarios/)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    p.add_argument("--speed", default="max", help="'max' (jump event to event) or xN, e.g. x60")
    p.add_argument("--report", help="report directory (default ./drill-report/<scenario>-<seed>/)")
    p.add_argument("--policy", choices=["optimised", "greedy"], default="optimised")
    p.add_argument("--keep", action="store_true", help="keep the drill schema for inspection")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--data-dir",
        help="embedded PostgreSQL data directory (default: MUSTER_DATA_DIR or a per-user dir); "
        "ignored when DATABASE_URL is set",
    )
    c = sub.add_parser("compare", help="two report.json files side by side")
    c.add_argument("a")
    c.add_argument("b")
    return parser


class _Bar:
    """A progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = -1
        self.t0 = time.perf_counter()

    def __call__(self, frac: float, note: str) -> None:
        pct = int(max(0.0, min(1.0, frac)) * 100)
        if self.tty:
            if pct == self.last:
                return
            filled = pct * 30 // 100
            bar = "#" * filled + "-" * (30 - filled)
            elapsed = time.perf_counter() - self.t0
            sys.stderr.write(f"\r{self.name} [{bar}] {pct:3d}%  {note}  {elapsed:5.1f}s ")
            sys.stderr.flush()
        elif pct // 10 != self.last // 10:
            sys.stderr.write(f"{self.name}: {pct}% ({note})\n")
        self.last = pct

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _run(args: argparse.Namespace) -> int:
    from dispatch.config import Settings
    from dispatch.drills import parse_speed
    from dispatch.storage.database import database_url
    from drills.report import write_report
    from drills.runner import DrillOptions, run_drill
    from drills.scenario import ScenarioError, load_scenario

    try:
        scenario, base = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"error: the scenario is invalid:\n{exc}", file=sys.stderr)
        return 2
    try:
        speed = parse_speed(args.speed)
    except ValueError:
        print("error: --speed is 'max' or xN (e.g. x60)", file=sys.stderr)
        return 2
    seed = scenario.seed if args.seed is None else args.seed
    out = Path(args.report or f"drill-report/{scenario.name}-{seed}")
    bar = None if args.quiet else _Bar(scenario.name)
    settings = Settings.from_env()
    if args.data_dir:
        settings = settings.with_overrides(data_dir=Path(args.data_dir))

    async def work() -> Any:
        async with database_url(settings) as dsn:
            return await run_drill(
                dsn,
                scenario,
                base,
                DrillOptions(
                    seed=seed, speed=speed, policy=args.policy, keep=args.keep, progress=bar
                ),
            )

    result = asyncio.run(work())
    if bar is not None:
        bar.done()
    paths = write_report(result.report, result.run, out)
    _summary(result.report, result.run)
    print(f"report: {paths['html']}  (figures: {paths['json']}, run: {paths['run']})")
    if args.keep:
        print(f"drill schema kept: {result.schema}")
    return 0


def _summary(r: dict[str, Any], run: dict[str, Any]) -> None:
    s = r["summary"]
    sc = r["scenario"]

    def mins(v: float | None) -> str:
        return "—" if v is None else f"{v / 60:.1f} min"

    print(
        f"EXERCISE drill '{sc['name']}' (seed {sc['seed']}, policy {sc['policy']}): "
        f"{sc['duration_s'] / 3600:.1f} h simulated in {run['wall_seconds']:.1f} s"
    )
    print(
        f"  incidents {s['incidents']}, people slots {s['people_slots']}, "
        f"staffed {s['slots_staffed']}, offers {s['offers']} "
        f"(accepted {r['offers']['accepted']}, declined {r['offers']['declined']}, "
        f"expired {r['offers']['expired']})"
    )
    print(
        f"  median time to first offer {mins(s['median_first_offer_s'])}, "
        f"to full staffing {mins(s['median_full_staffing_s'])}"
    )
    print(
        f"  people deployed {s['people_deployed']}, Jain fairness {s['jain_hours']}, "
        f"re-plans {s['replans']}, messages {s['messages']} "
        f"(all exercise-marked: {r['messages']['not_exercise_marked'] == 0})"
    )
    print(f"  objectives met {s['objectives_met']}/{s['objectives']}:")
    for o in r["objectives"]:
        mark = "met" if o["met"] else ("n/a" if o["met"] is None else "NOT met")
        print(f"    [{mark:>7}] {o['text']} — measured {o['measured']}")


def _compare(args: argparse.Namespace) -> int:
    from drills.compare import compare, load_report

    try:
        a, b = load_report(args.a), load_report(args.b)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"A = {args.a}\nB = {args.b}\n")
    print(compare(a, b))
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``muster drill ...``."""
    args = _parser().parse_args(argv)
    if args.what == "run":
        return _run(args)
    return _compare(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
