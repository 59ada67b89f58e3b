"""Connection pool and the embedded-or-external server choice."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from dispatch.config import Settings
from dispatch.storage.embedded import EmbeddedServer, start_embedded
from dispatch.storage.migrations import migrate

log = logging.getLogger(__name__)


async def _init_connection(con: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await con.set_type_codec(
            typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def create_pool(
    dsn: str,
    *,
    schema: str = "public",
    min_size: int = 2,
    max_size: int = 10,
    reset: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    settings: dict[str, str] | None = None,
) -> Any:
    """A pool whose connections decode JSON and use ``schema`` as their search path.

    ``reset`` replaces asyncpg's reset query on release (an open transaction is still rolled
    back and listeners dropped); only for pools whose users keep no session state.
    ``settings``: more session settings (a drill's throwaway schema commits asynchronously).
    """
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=reset,
        server_settings={
            "search_path": f'"{schema}", public',
            "application_name": "muster",
            **(settings or {}),
        },
    )


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield the DSN to use: ``DATABASE_URL`` when set, otherwise a started embedded server."""
    if settings.database_url:
        yield settings.database_url
        return
    server: EmbeddedServer = await asyncio.to_thread(start_embedded, settings.data_dir)
    try:
        yield server.dsn
    finally:
        await asyncio.to_thread(server.stop)


async def migrate_dsn(dsn: str, schema: str = "public") -> list[int]:
    """Apply pending migrations on a dedicated connection."""
    con = await asyncpg.connect(dsn)
    try:
        return await migrate(con, schema)
    finally:
        await con.close()
