"""Test fixtures: a real PostgreSQL (embedded unless DATABASE_URL is set), one fresh database per
test cloned from a migrated template, and the real aiohttp app."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from dispatch.config import Settings
from dispatch.storage.database import create_pool, migrate_dsn


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test outside tests/unit touches PostgreSQL."""
    for item in items:
        rel = Path(str(item.fspath)).parts
        if any(p in rel for p in ("storage", "api", "engine", "delivery", "drills", "webhooks")):
            item.add_marker(pytest.mark.storage)


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The server under test: DATABASE_URL when set, else an embedded PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from dispatch.storage.embedded import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("pg"))
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_db(server_dsn: str) -> AsyncIterator[str]:
    """A database with every migration applied, used as the template of each test database."""
    name = f"muster_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate_dsn(with_database(server_dsn, name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"muster_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        yield with_database(server_dsn, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_dsn: str) -> AsyncIterator[Any]:
    """An asyncpg pool on the test database (JSON codecs as in the app)."""
    p = await create_pool(db_dsn, min_size=1, max_size=5)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def settings(db_dsn: str, tmp_path: Path) -> Settings:
    """App settings pointing at the test database."""
    return Settings(database_url=db_dsn, data_dir=tmp_path, pool_min=1, pool_max=5, engine=False)


MakeClient = Callable[..., Awaitable[Any]]


@pytest_asyncio.fixture(loop_scope="session")
async def client(settings: Settings, aiohttp_client: Any) -> Any:
    """The real app, served on a local port, with a client."""
    from api.app import create_app

    return await aiohttp_client(create_app(settings))


async def make_token(
    dsn: str, role: str, jurisdiction: str | None = None, person: str | None = None
) -> str:
    """Create a token straight in the database (the CLI path) and return its secret."""
    from dispatch.audit import AuditContext
    from dispatch.storage import tokens
    from dispatch.tokens import TokenCreate

    con = await asyncpg.connect(dsn)
    try:
        from dispatch.storage.database import _init_connection

        await _init_connection(con)
        body = TokenCreate.model_validate(
            {"role": role, "jurisdiction": jurisdiction, "person": person}, strict=False
        )
        secret, _ = await tokens.create(con, None, AuditContext.system("test"), body)
        return secret
    finally:
        await con.close()


@pytest_asyncio.fixture(loop_scope="session")
async def admin_token(db_dsn: str) -> str:
    """An unscoped admin token in the test database."""
    return await make_token(db_dsn, "admin")


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


#: City ``c`` with districts ``a`` and ``b``, one street each (``a-1``, ``b-1``).
TREE: list[dict[str, Any]] = [
    {"code": "c", "kind": "city", "name": "City"},
    {"code": "a", "parent": "c", "kind": "district", "name": "District A"},
    {"code": "b", "parent": "c", "kind": "district", "name": "District B"},
    {"code": "a-1", "parent": "a", "kind": "street", "name": "Street A1"},
    {"code": "b-1", "parent": "b", "kind": "street", "name": "Street B1"},
]


async def create_jurisdictions(
    client: Any, token: str, bodies: list[dict[str, Any]] = TREE
) -> None:
    """``POST /v1/jurisdictions`` for each body, in order (parents first); each must be 201."""
    for body in bodies:
        r = await client.post("/v1/jurisdictions", json=body, headers=bearer(token))
        assert r.status == 201, await r.text()
