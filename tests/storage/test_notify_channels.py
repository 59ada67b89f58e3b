"""Notifications are per schema: a drill's writes in its own schema never wake live listeners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from dispatch.storage import engine as engine_store
from dispatch.storage.database import create_pool
from drills import isolation

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_drill_schema_notifies_its_own_channel_not_the_live_one(db_dsn: str) -> None:
    schema = isolation.new_schema_name()
    admin = await asyncpg.connect(db_dsn)
    live: asyncio.Queue[str] = asyncio.Queue()
    drill: asyncio.Queue[str] = asyncio.Queue()
    try:
        await isolation.create_schema(admin, schema)
        await admin.add_listener("muster_engine", lambda *a: live.put_nowait(a[3]))
        await admin.add_listener(f"muster_engine:{schema}", lambda *a: drill.put_nowait(a[3]))
        pools: list[Any] = []
        try:
            for s in (schema, "public"):
                pools.append(await create_pool(db_dsn, schema=s, min_size=1, max_size=1))
            drill_pool, live_pool = pools
            async with drill_pool.acquire() as con, con.transaction():
                await engine_store.request_replan(con, T0, "drill inject")
            assert await asyncio.wait_for(drill.get(), 10) == "replan"
            # Nothing on the live channel: PostgreSQL delivers notifications in commit order, so
            # one sent after that commit is the next thing the live listener gets.
            await live_pool.execute("SELECT pg_notify('muster_engine', 'barrier')")
            assert await asyncio.wait_for(live.get(), 10) == "barrier"
            async with live_pool.acquire() as con, con.transaction():
                await engine_store.request_replan(con, T0, "live change")
            assert await asyncio.wait_for(live.get(), 10) == "replan"
            await drill_pool.execute("SELECT pg_notify($1, 'barrier')", f"muster_engine:{schema}")
            assert await asyncio.wait_for(drill.get(), 10) == "barrier"
            assert drill.empty()
        finally:
            for p in pools:
                await p.close()
    finally:
        await isolation.drop_schema(admin, schema)
        await admin.close()
