"""``muster import people FILE [--format csv|json] [--partial] [--data-dir DIR]``.

Imports a roster file straight into the database (``DATABASE_URL``, else the embedded server
under ``--data-dir``) as the local operator: unscoped, audited as ``system:cli``. The CSV layout
is documented in :mod:`dispatch.storage.roster_import`. ``FILE`` may be ``-`` for stdin.

Exit status: 0 all rows imported; 1 partial import that skipped bad rows; 2 nothing imported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from api.cli import _add_db_flags, _with_db

MAX_PRINTED_ERRORS = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muster import", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("people", help="import people from a CSV or JSON file")
    p.add_argument("file", help="the roster file, or - for standard input")
    p.add_argument(
        "--format", choices=["csv", "json"], help="default: from the file extension (else csv)"
    )
    p.add_argument(
        "--partial", action="store_true", help="import the good rows and report the bad ones"
    )
    _add_db_flags(p)
    return parser


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    return "json" if str(args.file).lower().endswith(".json") else "csv"


def _print_errors(errors: list[dict[str, Any]]) -> None:
    for e in errors[:MAX_PRINTED_ERRORS]:
        print(f"  {e['loc']}: {e['msg']}", file=sys.stderr)
    if len(errors) > MAX_PRINTED_ERRORS:
        print(f"  ... and {len(errors) - MAX_PRINTED_ERRORS} more errors", file=sys.stderr)


def import_people(args: argparse.Namespace) -> int:
    from dispatch.audit import AuditContext
    from dispatch.errors import DomainError
    from dispatch.storage import roster_import

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        parsed = roster_import.parse(raw, _format(args))
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        _print_errors([f.as_dict() for f in exc.errors])
        return 2

    async def work(con: Any) -> int:
        try:
            out = await roster_import.import_people(
                con, None, AuditContext.system("cli"), parsed, partial=args.partial
            )
        except DomainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            _print_errors([f.as_dict() for f in exc.errors])
            return 2
        elapsed = time.perf_counter() - started
        print(
            f"imported {out['imported']} of {out['rows']} people in {elapsed:.1f} s "
            f"(import {out['import_id']})"
        )
        if out["invalid"]:
            print(f"skipped {out['invalid']} invalid rows:", file=sys.stderr)
            _print_errors(out["errors"])
            return 1
        return 0

    return _with_db(args, work)


def main(argv: list[str]) -> int:
    """Entry point used by ``muster import ...``."""
    args = build_parser().parse_args(argv)
    if args.what == "people":
        return import_people(args)
    return 2  # pragma: no cover - argparse rejects other choices
