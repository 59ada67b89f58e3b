"""``muster seed demo [--people N] [--seed S]``: load a generated demo city."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from api.cli import _add_db_flags, _guarded, _with_db


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="muster seed", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("demo", help="a demo city: districts, streets, communities, people, depots")
    p.add_argument("--people", type=int, default=2000, help="how many people (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same city)")
    _add_db_flags(p)
    args = parser.parse_args(argv)
    if not 1 <= args.people <= 200_000:
        parser.error("--people must be between 1 and 200000")

    from dispatch.audit import AuditContext
    from dispatch.demo_city import generate
    from dispatch.storage.seed import load_city

    async def work(con: Any) -> int:
        if await con.fetchval("SELECT count(*) FROM jurisdictions WHERE code = 'city'"):
            print("error: this database already holds the demo city", file=sys.stderr)
            return 2
        counts = await load_city(
            con, generate(args.people, seed=args.seed), AuditContext.system("seed")
        )
        print("loaded demo city: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
        print("try: muster token create --role coordinator --jurisdiction pudong", file=sys.stderr)
        return 0

    return _guarded(lambda: _with_db(args, work))
