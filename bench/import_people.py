"""Roster import benchmark: ``python -m bench.import_people [--rows 50000]``.

Uses ``DATABASE_URL`` when set, otherwise starts an embedded PostgreSQL in a temporary data
directory. Each measured run gets a fresh database cloned from a migrated template (with a small
jurisdiction tree), so every run inserts into an empty ``people`` table. It prints rows/s for:

- ``baseline``: the same staging records COPYed and inserted with no parsing or validation,
  i.e. the database's share of an import;
- ``csv`` / ``json``: the full path a request takes (parse + pydantic validation + staging +
  checks + insert + audit, one transaction), from the file's bytes;
- ``csv over HTTP``: the same CSV posted to ``/v1/people:import`` of the real app.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dispatch import roster_cells, roster_files
from dispatch.audit import AuditContext
from dispatch.config import Settings
from dispatch.storage import roster_import
from dispatch.storage.database import _init_connection, database_url, migrate_dsn

FIRST = (
    "Wei Li Fang Min Jing Lei Yan Hui Chen Anna Ben Chloe David Emma Farid Grace Hugo Iris".split()
)
LAST = "Zhang Wang Li Liu Chen Yang Huang Zhao Wu Zhou Smith Garcia Müller Rossi Novak Kim".split()
SKILLS = ["first_aid", "driver", "search_rescue", "logistics", "radio", "nurse", "cook", "boat"]
CERTIFIED = {"first_aid", "nurse", "boat"}
WINDOWS = ["mon-fri 08:00-18:00", "sat,sun 09:00-17:00", "daily 18:00-23:00", "fri 22:00-06:00"]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def jurisdictions() -> list[tuple[str, str | None, str, str]]:
    """(code, parent, kind, name): a city, 8 districts, 5 streets each."""
    out: list[tuple[str, str | None, str, str]] = [("bench", None, "city", "Bench City")]
    for d in range(8):
        out.append((f"d{d}", "bench", "district", f"District {d}"))
        out.extend((f"d{d}-s{s}", f"d{d}", "street", f"Street {d}.{s}") for s in range(5))
    return out


def generate(n: int, seed: int = 7) -> list[dict[str, str]]:
    """``n`` realistic CSV rows (column → cell)."""
    rnd = random.Random(seed)
    streets = [code for code, _, kind, _ in jurisdictions() if kind == "street"]
    rows = []
    for i in range(n):
        skills = rnd.sample(SKILLS, rnd.randint(0, 4))
        skill_cells, cert_cells = [], []
        for s in skills:
            cell = f"{s}:{rnd.randint(1, 5)}"
            if rnd.random() < 0.2:
                cell += f"@202{rnd.randint(5, 9)}-{rnd.randint(1, 12):02d}-28"
            skill_cells.append(cell)
            if s in CERTIFIED:
                cert_cells.append(f"{s}@202{rnd.randint(5, 9)}-{rnd.randint(1, 12):02d}-28")
        rows.append(
            {
                "id": f"v{i:07d}",
                "kind": "staff" if rnd.random() < 0.1 else "volunteer",
                "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                "jurisdiction": rnd.choice(streets),
                "home_lat": f"{31.0 + rnd.random() * 0.5:.6f}",
                "home_lon": f"{121.2 + rnd.random() * 0.6:.6f}",
                "phone": f"+86138{rnd.randint(0, 99_999_999):08d}",
                "email": f"user{i}@example.org",
                "skills": ";".join(skill_cells),
                "certifications": ";".join(cert_cells),
                "availability": "; ".join(rnd.sample(WINDOWS, rnd.randint(0, 2))),
                "timezone": "Asia/Shanghai",
                "max_hours_per_24h": str(rnd.choice([8, 10, 12])),
                "min_rest_hours": str(rnd.choice([8, 10, 11])),
                "reserve": "true" if rnd.random() < 0.05 else "false",
                "active": "true",
            }
        )
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def to_json(rows: list[dict[str, str]]) -> bytes:
    """The same people as JSON objects (as a client of ``POST /v1/people:import`` sends them)."""
    people = [
        roster_files.PEOPLE.dump_python(
            roster_files.PEOPLE.validate_python([roster_cells.csv_row(r)], strict=False),
            mode="json",
        )[0]
        | {"id": r["id"]}
        for r in rows
    ]
    return json.dumps(people).encode()


async def with_fresh_db(
    server: str, template: str, work: Callable[[asyncpg.Connection], Awaitable[float]]
) -> float:
    """Run ``work`` on a new database cloned from ``template``; returns its result."""
    name = f"muster_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        con = await asyncpg.connect(with_database(server, name))
        await _init_connection(con)
        try:
            return await work(con)
        finally:
            await con.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(server: str, n: int) -> None:
    rows = generate(n)
    csv_bytes, json_bytes = to_csv(rows), to_json(rows)
    records = roster_import.parse(csv_bytes, "csv").records
    template = f"muster_bench_tpl_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{template}"')
    try:
        await migrate_dsn(with_database(server, template))
        con = await asyncpg.connect(with_database(server, template))
        await con.executemany(
            "INSERT INTO jurisdictions (code, parent_code, path, kind, name) "
            "SELECT $1, $2::text, COALESCE((SELECT path FROM jurisdictions WHERE code = $2), '')"
            " || '/' || $1, $3, $4",
            jurisdictions(),
        )
        await con.close()

        async def baseline(con: asyncpg.Connection) -> float:
            t0 = time.perf_counter()
            async with con.transaction():
                await con.execute(roster_import.Q.create_import_table)
                await con.copy_records_to_table(
                    "people_import", records=records, columns=roster_files.STAGE_COLUMNS
                )
                await con.execute(roster_import.Q.import_insert, [])
            return time.perf_counter() - t0

        def full(raw: bytes, fmt: str) -> Callable[[asyncpg.Connection], Awaitable[float]]:
            async def go(con: asyncpg.Connection) -> float:
                t0 = time.perf_counter()
                parsed = await asyncio.to_thread(roster_import.parse, raw, fmt)
                out = await roster_import.import_people(
                    con, None, AuditContext.system("bench"), parsed
                )
                elapsed = time.perf_counter() - t0
                assert out["imported"] == n, out
                count = await con.fetchval("SELECT count(*) FROM people")
                assert count == n, count
                return elapsed

            return go

        async def http_csv(con: asyncpg.Connection) -> float:
            from aiohttp.test_utils import TestClient, TestServer

            from api.app import create_app
            from dispatch.storage import tokens
            from dispatch.tokens import TokenCreate

            dsn = with_database(server, await con.fetchval("SELECT current_database()"))
            body = TokenCreate.model_validate({"role": "admin"}, strict=False)
            secret, _ = await tokens.create(con, None, AuditContext.system("bench"), body)
            app = create_app(Settings(database_url=dsn, pool_min=1, pool_max=2))
            async with TestClient(TestServer(app)) as http:
                t0 = time.perf_counter()
                r = await http.post(
                    "/v1/people:import",
                    data=csv_bytes,
                    headers={"Authorization": f"Bearer {secret}", "Content-Type": "text/csv"},
                )
                out = await r.json()
                elapsed = time.perf_counter() - t0
            assert r.status == 200 and out["imported"] == n, out
            return elapsed

        print(
            f"roster import benchmark: {n} people, {len(csv_bytes) / 1e6:.1f} MB CSV, "
            f"{len(json_bytes) / 1e6:.1f} MB JSON"
        )
        for label, work in (
            ("baseline (COPY+INSERT, no parsing/validation)", baseline),
            ("csv  (parse+validate+COPY+checks+INSERT+audit)", full(csv_bytes, "csv")),
            ("json (parse+validate+COPY+checks+INSERT+audit)", full(json_bytes, "json")),
            ("csv over HTTP (POST /v1/people:import)", http_csv),
        ):
            secs = await with_fresh_db(server, template, work)
            verdict = (
                ""
                if label.startswith("baseline")
                else ("  OK (< 10 s)" if secs < 10 else "  TOO SLOW (>= 10 s)")
            )
            print(f"  {label:<48} {secs:6.2f} s  {n / secs:9,.0f} rows/s{verdict}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        await admin.close()


async def amain(rows: int) -> int:
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        settings = Settings.from_env().with_overrides(data_dir=Path(tmp))
        async with database_url(settings) as dsn:
            await run(dsn, rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_people", description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args(argv)
    return asyncio.run(amain(args.rows))


if __name__ == "__main__":
    sys.exit(main())
