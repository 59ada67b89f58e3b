"""The composition root for HTTP: ``create_app(settings)``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from aiohttp import web

from api import middleware
from api.keys import (
    ANSWER_READS,
    ANSWERS,
    AUDIT_SEALER,
    CLOCK,
    DSN,
    ENGINE,
    METRICS,
    OPENAPI,
    POOL,
    RUNNER,
    SETTINGS,
    STREAMS,
    WEBHOOKS,
)
from api.metrics import Metrics, metrics_middleware
from api.problems import problem_middleware
from api.spec import Api, openapi
from api.streams import StreamHub
from api.views import (
    admin,
    allocations,
    assignments,
    drills,
    health,
    incidents,
    jurisdictions,
    me,
    modes,
    people,
    plans,
    streams,
    supplies,
    webhooks,
)
from dispatch.clock import Clock, SystemClock
from dispatch.config import Settings
from dispatch.services.audit_sealer import AuditSealer
from dispatch.services.engine import Engine, EngineConfig
from dispatch.services.runner import LiveRunner
from dispatch.services.webhook_dispatcher import webhook_service
from dispatch.storage.answer_batch import AnswerBatch, ReadBatch
from dispatch.storage.database import create_pool, database_url, migrate_dsn

log = logging.getLogger("muster.api")

VERSION = "0.1.0"


def all_apis() -> list[Api]:
    """Every view module's routes, in documentation order."""
    return [
        health.api,
        jurisdictions.api,
        people.api,
        modes.api,
        admin.api,
        assignments.api,
        plans.api,
        supplies.api,
        incidents.api,
        allocations.api,
        webhooks.api,
        me.api,
        streams.api,
        drills.api,
    ]


async def _keep_session(con: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (a round trip per release): the app's pooled
    connections keep no session state (LISTEN and session advisory locks live on their own
    connections), and an open transaction is still rolled back."""


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with database_url(settings) as dsn:
        await migrate_dsn(dsn)
        pool = await create_pool(
            dsn, min_size=settings.pool_min, max_size=settings.pool_max, reset=_keep_session
        )
        app[DSN] = dsn
        app[POOL] = pool
        try:
            yield
        finally:
            await pool.close()


async def _answers(app: web.Application) -> AsyncIterator[None]:
    """Answers read and stored in batches (``app[ANSWER_READS]``, ``app[ANSWERS]``: group
    commit); on the way out, what they hold is done."""
    reads = ReadBatch(app[POOL])
    batch = AnswerBatch(app[POOL], observe=app[METRICS].answer_batch_size.observe)
    app[ANSWER_READS] = reads
    app[ANSWERS] = batch
    try:
        yield
    finally:
        await reads.close()
        await batch.close()


async def _engine(app: web.Application) -> AsyncIterator[None]:
    """The engine, and (live) its runner: leadership, scheduler, notifications."""
    settings = app[SETTINGS]
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="solver")
    engine = Engine(
        app[POOL],
        app[CLOCK],
        executor=executor,
        config=EngineConfig(
            solve_time_limit_s=settings.solve_time_limit_s,
            debounce_s=settings.replan_debounce_s,
        ),
    )
    app[ENGINE] = engine
    runner = (
        LiveRunner(engine, app[DSN], retry_s=settings.leader_retry_s) if app[LIVE_ENGINE] else None
    )
    app[RUNNER] = runner
    if runner is not None:
        await runner.start()
    try:
        yield
    finally:
        if runner is not None:
            await runner.stop()
        executor.shutdown(wait=True, cancel_futures=True)


LIVE_ENGINE = web.AppKey("live_engine", bool)


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """The webhook dispatcher (``app[WEBHOOKS]``); it sends in the background when live."""
    async with webhook_service(
        app[POOL], app[CLOCK], app[DSN], app[SETTINGS], live=app[LIVE_ENGINE]
    ) as dispatcher:
        app[WEBHOOKS] = dispatcher
        yield


async def _streams(app: web.Application) -> AsyncIterator[None]:
    """The stream hub (``app[STREAMS]``): one LISTEN connection, the connected clients."""
    hub = StreamHub(app[POOL], app[DSN], heartbeat_s=app[SETTINGS].heartbeat_s)
    await hub.start()
    app[STREAMS] = hub
    try:
        yield
    finally:
        await hub.stop()


async def _drills(app: web.Application) -> AsyncIterator[None]:
    """The drill service (``app[DRILLS]``): drills started through the trainer API run here."""
    from drills.service import DrillService

    service = DrillService(app[POOL], app[DSN], app[CLOCK])
    await service.start()
    app[drills.DRILLS] = service
    try:
        yield
    finally:
        await service.close()


async def _audit_sealer(app: web.Application) -> AsyncIterator[None]:
    """Seals audit rows that committed while another commit was sealing (migration 0010)."""
    sealer = app[AUDIT_SEALER] = AuditSealer(app[POOL])
    await sealer.start()
    try:
        yield
    finally:
        await sealer.stop()
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await sealer.sweep()


async def _end_streams(app: web.Application) -> None:
    """On shutdown, before waiting for handlers: WebSockets GOING_AWAY, SSE responses end."""
    if STREAMS in app:
        await app[STREAMS].shutdown()


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """Build the aiohttp application; resources open and close in ``cleanup_ctx``.

    With the default wall clock and ``settings.engine`` on, the engine runs live (APScheduler,
    leadership). An injected ``clock`` (tests, drills) means whoever injected it drives the engine
    through ``app[ENGINE].run_due()``.
    """
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
    app[CLOCK] = clock or SystemClock()
    app[LIVE_ENGINE] = clock is None and settings.engine
    app[METRICS] = Metrics()
    apis = all_apis()
    app[OPENAPI] = openapi(apis, title="Muster API", version=VERSION)
    for api in apis:
        app.add_routes(api.routes)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_answers)
    app.cleanup_ctx.append(_audit_sealer)
    app.cleanup_ctx.append(_engine)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_streams)
    app.cleanup_ctx.append(_drills)
    app.on_shutdown.append(_end_streams)
    return app
