"""``muster solve SNAPSHOT.json [--time-limit S] [--seed N]``: print the plan as JSON."""

from __future__ import annotations

import argparse
import sys

from solver.snapshot import SnapshotError, parse_snapshot
from solver.solve import solve

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Solve a snapshot file (``-`` for stdin); 0 on success, 2 for a malformed snapshot."""
    parser = argparse.ArgumentParser(
        prog="muster solve", description="Plan people and supplies for a snapshot (JSON)."
    )
    parser.add_argument("snapshot", help="snapshot JSON file, or - for stdin")
    parser.add_argument("--time-limit", type=float, default=5.0, dest="time_limit", metavar="S")
    parser.add_argument("--seed", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if args.time_limit <= 0:
        parser.error("--time-limit must be positive")
    try:
        if args.snapshot == "-":
            text = sys.stdin.read()
        else:
            with open(args.snapshot, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        print(f"muster solve: cannot read {args.snapshot}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        snapshot = parse_snapshot(text)
    except SnapshotError as exc:
        print("muster solve: malformed snapshot:", file=sys.stderr)
        for path, message in exc.errors:
            print(f"  {path}: {message}", file=sys.stderr)
        return 2
    plan = solve(snapshot, time_limit_s=args.time_limit, seed=args.seed)
    sys.stdout.write(plan.to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
