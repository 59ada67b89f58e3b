"""Shared benchmark plumbing: a fresh, migrated database on DATABASE_URL or an embedded server."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dispatch.config import Settings
from dispatch.storage.database import database_url, migrate_dsn


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def fresh_database(prefix: str = "bench") -> AsyncIterator[str]:
    """Yield the DSN of a new, migrated database; dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        settings = Settings.from_env().with_overrides(data_dir=Path(tmp))
        async with database_url(settings) as server:
            name = f"{prefix}_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(server)
            try:
                await admin.execute(f'CREATE DATABASE "{name}"')
                dsn = with_database(server, name)
                await migrate_dsn(dsn)
                yield dsn
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
