"""Webhook tests: helpers shared by the test modules (real receivers over real HTTP)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from dispatch.storage import engine as engine_store
from tests.conftest import bearer, create_jurisdictions

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"

PEOPLE = {"pa": "a-1", "pa2": "a", "pb": "b-1"}


def documented_verifier() -> Any:
    """The ``verify_muster_signature`` snippet of docs/webhooks.md, executed as published."""
    text = DOC.read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    code = next(b for b in blocks if "def verify_muster_signature" in b)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["verify_muster_signature"]


@dataclass
class Hit:
    """One request a receiver got."""

    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A gateway stand-in: answers with ``script`` statuses in turn, then ``default``."""

    script: list[int] = field(default_factory=list)
    default: int = 200
    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.script.pop(0) if self.script else self.default
        self.hits.append(Hit(dict(request.headers), body, status))
        self.arrived.set()
        await asyncio.sleep(0)  # let a competing dispatcher run in between
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    def delivery_ids(self) -> list[str]:
        return [h.headers["X-Muster-Delivery"] for h in self.hits]

    def acknowledged(self) -> list[Hit]:
        return [h for h in self.hits if 200 <= h.answered < 300]


@asynccontextmanager
async def receiver(**kw: Any) -> AsyncIterator[Receiver]:
    """Serve a :class:`Receiver` on a free 127.0.0.1 port."""
    rec = Receiver(**kw)
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def build_tree(client: Any, admin: str, dsn: str) -> None:
    """Jurisdictions c > a > a-1, c > b > b-1 and three people (straight in the database)."""
    await create_jurisdictions(client, admin)
    con = await asyncpg.connect(dsn)
    try:
        for pid, code in PEOPLE.items():
            await con.execute(
                "INSERT INTO people (id, kind, name, jurisdiction_code, home_lat, home_lon)"
                " VALUES ($1, 'volunteer', $1, $2, 31.2, 121.5)",
                pid,
                code,
            )
    finally:
        await con.close()


async def register(client: Any, admin: str, **body: Any) -> dict[str, Any]:
    """``POST /v1/webhooks``; returns the created endpoint with its secret."""
    r = await client.post("/v1/webhooks", json=body, headers=bearer(admin))
    assert r.status == 201, await r.text()
    out: dict[str, Any] = await r.json()
    return out


async def send(
    pool: Any, person: str, kind: str, payload: dict[str, Any], *, now: Any, exercise: bool = False
) -> int:
    """A message through the engine's own outbox writer, in its own transaction."""
    async with pool.acquire() as con, con.transaction():
        return await engine_store.send(con, person, kind, payload, now=now, exercise=exercise)


async def deliveries(client: Any, admin: str, endpoint: str, **params: str) -> list[Any]:
    r = await client.get(
        f"/v1/webhooks/{endpoint}/deliveries", params=params, headers=bearer(admin)
    )
    assert r.status == 200, await r.text()
    items: list[Any] = (await r.json())["items"]
    return items
