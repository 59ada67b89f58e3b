"""The ``muster`` command: serve, tokens, seeding, import, audit, solver."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dispatch.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    return settings.with_overrides(
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def _with_db(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``work(connection)`` against the configured database (embedded when unset)."""
    from dispatch.storage.database import database_url, migrate_dsn

    async def main() -> int:
        import asyncpg

        from dispatch.storage.database import _init_connection

        async with database_url(_settings(args)) as dsn:
            await migrate_dsn(dsn)
            con = await asyncpg.connect(dsn)
            await _init_connection(con)
            try:
                return await work(con)
            finally:
                await con.close()

    return asyncio.run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from api.app import create_app
    from api.logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.log_level, json_format=settings.log_json)
    app = create_app(settings)
    # Appended after create_app, so it runs once the database cleanup context is up.
    app.on_startup.append(_first_start_hint(settings))
    listening = f"Muster listening on http://{settings.host}:{settings.port}"
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_s,
        # run_app prints once the site listens (start-up hooks, migrations included, are done)
        print=lambda _banner: print(listening, file=sys.stderr, flush=True),
        access_log=None,
    )
    return 0


def admin_token_command(settings: Settings) -> str:
    """The command that makes the first admin token for the database ``settings`` point at."""
    import shlex

    if settings.database_url:
        return "muster token create --role admin   (with the same DATABASE_URL)"
    return f"muster token create --role admin --data-dir {shlex.quote(str(settings.data_dir))}"


def _first_start_hint(settings: Settings) -> Callable[[Any], Awaitable[None]]:
    """An on_startup hook: on a database without an admin token, say how to get one."""

    async def hint(app: Any) -> None:
        from api.keys import POOL
        from dispatch.storage import tokens

        async with app[POOL].acquire() as con:
            if await tokens.has_admin(con):
                return
        print(
            "No admin token exists yet. Create one (it is printed once) with:\n"
            f"    {admin_token_command(settings)}",
            file=sys.stderr,
            flush=True,
        )

    return hint


def cmd_token_create(args: argparse.Namespace) -> int:
    from dispatch.audit import AuditContext
    from dispatch.errors import DomainError
    from dispatch.storage import tokens
    from dispatch.tokens import TokenCreate
    from dispatch.validation import parse

    async def work(con: Any) -> int:
        body = parse(
            TokenCreate,
            {
                "role": args.role,
                "jurisdiction": args.jurisdiction,
                "person": args.person,
                "label": args.label or "",
            },
            what="token request",
        )
        try:
            secret, out = await tokens.create(con, None, AuditContext.system("cli"), body)
        except DomainError as exc:
            print(f"error: {exc}", file=sys.stderr)
            for f in exc.errors:
                print(f"  {f.loc}: {f.msg}", file=sys.stderr)
            return 2
        print(secret)
        print(f"token id {out['id']} role {out['role']}", file=sys.stderr)
        return 0

    return _guarded(lambda: _with_db(args, work))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from dispatch.audit import AuditContext
    from dispatch.errors import NotFound
    from dispatch.storage import tokens

    async def work(con: Any) -> int:
        # The same use case as the API: one transaction, audited with before/after.
        try:
            out = await tokens.revoke(con, None, AuditContext.system("cli"), args.id)
        except NotFound:
            print(f"error: no token {args.id}", file=sys.stderr)
            return 2
        print(f"revoked {out['id']}")
        return 0

    return _guarded(lambda: _with_db(args, work))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from dispatch.storage import audit_log

    async def work(con: Any) -> int:
        report = await audit_log.verify(con)
        if report.ok:
            print(f"audit log OK: {report.rows} rows, head {report.head_hash}")
            return 0
        print(
            f"audit log BROKEN at seq {report.first_bad_seq}: {report.problem} "
            f"({report.rows} rows checked)",
        )
        return 1

    return _with_db(args, work)


def _guarded(run: Callable[[], int]) -> int:
    from dispatch.errors import DomainError

    try:
        return run()
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for f in exc.errors:
            print(f"  {f.loc}: {f.msg}", file=sys.stderr)
        return 2


def _add_db_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        help="embedded PostgreSQL data directory (default: MUSTER_DATA_DIR or a per-user dir); "
        "ignored when DATABASE_URL is set",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    _add_db_flags(p)
    p.set_defaults(func=cmd_serve)

    tok = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="sub", required=True
    )
    p = tok.add_parser("create", help="print a new API token")
    p.add_argument(
        "--role",
        required=True,
        choices=["admin", "coordinator", "trainer", "volunteer", "observer"],
    )
    p.add_argument("--jurisdiction", help="scope: a jurisdiction code (required except for admin)")
    p.add_argument("--person", help="the person a volunteer token is bound to")
    p.add_argument("--label")
    _add_db_flags(p)
    p.set_defaults(func=cmd_token_create)
    p = tok.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id")
    _add_db_flags(p)
    p.set_defaults(func=cmd_token_revoke)

    aud = sub.add_parser("audit", help="audit log").add_subparsers(dest="sub", required=True)
    p = aud.add_parser("verify", help="check the audit log's hash chain")
    _add_db_flags(p)
    p.set_defaults(func=cmd_audit_verify)

    _register_optional(sub)
    return parser


def _register_optional(sub: Any) -> None:
    """Subcommands that hand their arguments to another module's ``main(argv)``."""
    sub.add_parser("solve", help="solve a snapshot JSON file and print the plan", add_help=False)
    sub.add_parser("bench", help="benchmarks: muster bench solver [options]", add_help=False)
    sub.add_parser("seed", help="load generated data: muster seed demo --help", add_help=False)
    sub.add_parser("import", help="bulk import: muster import people FILE --help", add_help=False)
    sub.add_parser(
        "drill",
        help="drills: muster drill run SCENARIO.yaml | compare A.json B.json",
        add_help=False,
    )
    sub.add_parser(
        "volunteer",
        help="reference volunteer client: muster volunteer --url U --token T",
        add_help=False,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if (argv and argv[0] in PASSTHROUGH) or argv[:1] == ["bench"]:
        return _passthrough(argv[0], argv[1:])
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _passthrough(command: str, rest: list[str]) -> int:
    import importlib

    if command == "bench":
        if not rest or rest[0] not in BENCHES:
            print(f"usage: muster bench {{{','.join(BENCHES)}}} [options]", file=sys.stderr)
            return 2
        module = importlib.import_module(BENCHES[rest[0]])
        return int(module.main(rest[1:]))
    module = importlib.import_module(PASSTHROUGH[command])
    return int(module.main(rest))


PASSTHROUGH = {
    "solve": "solver.cli",
    "seed": "api.seed_cli",
    "import": "api.import_cli",
    "volunteer": "api.volunteer_client",
    "drill": "drills.cli",
}
BENCHES = {"solver": "solver.bench"}


if __name__ == "__main__":
    sys.exit(main())
