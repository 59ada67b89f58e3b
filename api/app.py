"""The composition root for HTTP: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from api import middleware
from api.keys import DSN, METRICS, OPENAPI, POOL, SETTINGS
from api.metrics import Metrics, metrics_middleware
from api.problems import problem_middleware
from api.spec import Api, openapi
from api.views import admin, health, jurisdictions
from dispatch.config import Settings
from dispatch.storage.database import create_pool, database_url, migrate_dsn

log = logging.getLogger("muster.api")

VERSION = "0.1.0"


def all_apis() -> list[Api]:
    """Every view module's routes, in documentation order."""
    return [health.api, jurisdictions.api, admin.api]


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with database_url(settings) as dsn:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=settings.pool_min, max_size=settings.pool_max)
        app[DSN] = dsn
        app[POOL] = pool
        try:
            yield
        finally:
            await pool.close()


def create_app(settings: Settings) -> web.Application:
    """Build the aiohttp application; resources open and close in ``cleanup_ctx``."""
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, settings.max_import_bytes),
        middlewares=[
            middleware.request_id_middleware,
            metrics_middleware,
            problem_middleware,
            middleware.body_limit_middleware,
            middleware.auth_middleware,
            middleware.idempotency_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    apis = all_apis()
    app[OPENAPI] = openapi(apis, title="Muster API", version=VERSION)
    for api in apis:
        app.add_routes(api.routes)
    app.cleanup_ctx.append(_database)
    return app
