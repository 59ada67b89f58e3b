"""Numbered plain-SQL migrations, applied in order under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every instance of Muster.
_LOCK_NAMESPACE = 0x6D757374  # "must"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """All migrations shipped in ``dispatch/storage/migrations``, sorted by version."""
    found: list[Migration] = []
    folder = resources.files("dispatch.storage") / "migrations"
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate(con: asyncpg.Connection, schema: str = "public") -> list[int]:
    """Apply pending migrations to ``schema``; returns the versions applied now.

    Two instances starting together serialise on a session advisory lock, so each migration runs
    exactly once; each one runs in its own transaction together with its bookkeeping row.
    """
    lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big", signed=True)
    await con.execute("SELECT pg_advisory_lock($1, $2)", _LOCK_NAMESPACE, lock_key)
    try:
        await con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
        await con.execute(f"SET search_path TO {_quote_ident(schema)}, public")
        await con.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await con.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {r["version"]: r["checksum"] for r in rows}
        done: list[int] = []
        for mig in load_migrations():
            if mig.version in applied:
                if applied[mig.version] != mig.checksum:
                    log.warning(
                        "migration %04d_%s changed after it was applied", mig.version, mig.name
                    )
                continue
            async with con.transaction():
                await con.execute(mig.sql)
                await con.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    mig.checksum,
                )
            log.info("applied migration %04d_%s", mig.version, mig.name)
            done.append(mig.version)
        return done
    finally:
        await con.execute("RESET search_path")
        await con.execute("SELECT pg_advisory_unlock($1, $2)", _LOCK_NAMESPACE, lock_key)
