"""Typed keys for the application and request state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatch.access import Principal
from dispatch.config import Settings
from dispatch.services.audit_sealer import AuditSealer
from dispatch.storage.answer_batch import AnswerBatch, ReadBatch

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", Any)  # asyncpg.Pool (asyncpg ships no type stubs)
DSN = web.AppKey("dsn", str)
AUDIT_SEALER = web.AppKey("audit_sealer", AuditSealer)
METRICS = web.AppKey("metrics", Any)
OPENAPI = web.AppKey("openapi", dict)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)

__all__ = ["DSN", "METRICS", "OPENAPI", "POOL", "PRINCIPAL", "REQUEST_ID", "SETTINGS", "Principal"]

CLOCK = web.AppKey("clock", Any)  # dispatch.clock.Clock
ENGINE = web.AppKey("engine", Any)  # dispatch.services.engine.Engine
RUNNER = web.AppKey("runner", Any)  # dispatch.services.runner.LiveRunner | None
WEBHOOKS = web.AppKey("webhooks", Any)  # dispatch.services.webhook_dispatcher.WebhookDispatcher
STREAMS = web.AppKey("streams", Any)  # api.streams.StreamHub
ANSWERS = web.AppKey("answers", AnswerBatch)
ANSWER_READS = web.AppKey("answer_reads", ReadBatch)
