"""Drill tests: helpers shared by the test modules (the trainer API client, deadline polls, what
the live schema holds)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import asyncpg

from tests.conftest import bearer

WAIT_S = 60.0


async def poll(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = WAIT_S
) -> Any:
    """Fetch until ``ok`` holds (deadline; never a fixed sleep to wait for a state).

    Drill progress and status are rows the drill service updates every tick; nothing announces
    them, so this is where the drill tests poll."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await fetch()
        if ok(value):
            return value
        assert loop.time() < deadline, f"condition not met in time; last value: {value}"
        await asyncio.sleep(0.05)


class Trainer:
    """A client acting with one token."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.h = bearer(token)

    async def create(self, status: int = 201, **body: Any) -> dict[str, Any]:
        r = await self.client.post("/v1/drills", json=body, headers=self.h)
        assert r.status == status, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def get(self, drill_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/drills/{drill_id}", headers=self.h)
        assert r.status == 200, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def act(self, drill_id: str, action: str, status: int = 200) -> dict[str, Any]:
        r = await self.client.post(f"/v1/drills/{drill_id}/{action}", headers=self.h)
        assert r.status == status, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def until(self, drill_id: str, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        got: dict[str, Any] = await poll(lambda: self.get(drill_id), ok)
        return got


async def live_rows(dsn: str, skip: Collection[str] = ()) -> dict[str, list[str]]:
    """Every row of every live (``public``) table but those in ``skip``, as sorted JSON text."""
    con = await asyncpg.connect(dsn)
    try:
        names = [
            r["tablename"]
            for r in await con.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        out = {}
        for t in names:
            if t in skip:
                continue
            rows = await con.fetch(f'SELECT to_jsonb(x)::text AS j FROM public."{t}" AS x')
            out[t] = sorted(r["j"] for r in rows)
        return out
    finally:
        await con.close()


async def drill_schemas(dsn: str) -> list[str]:
    """The drill schemas that exist now (each running or kept drill has one)."""
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'drill%' ORDER BY nspname"
        )
    finally:
        await con.close()
    return [r["nspname"] for r in rows]
