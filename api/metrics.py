"""Prometheus metrics: request counts and latencies per route, answer batch sizes."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from api.keys import METRICS
from api.problems import Handler


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "muster_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "muster_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.answer_batch_size = Histogram(
            "muster_answer_batch_size",
            "Answers to offers stored together in one transaction (group commit)",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        # Labelled children by label values: ``labels()`` validates and locks on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def count(self, method: str, route: str, status: int) -> None:
        """One request handled."""
        child = self._counters.get((method, route, status))
        if child is None:
            child = self._counters[(method, route, status)] = self.requests.labels(
                method, route, str(status)
            )
        child.inc()

    def observe(self, method: str, route: str, seconds: float) -> None:
        """One request's latency."""
        child = self._timers.get((method, route))
        if child is None:
            child = self._timers[(method, route)] = self.latency.labels(method, route)
        child.observe(seconds)


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by method, route template and status."""
    metrics: Metrics = request.app[METRICS]
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_name(request)
        metrics.count(request.method, route, status)
        metrics.observe(request.method, route, time.perf_counter() - start)


async def metrics_view(request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    body = generate_latest(request.app[METRICS].registry)
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp
