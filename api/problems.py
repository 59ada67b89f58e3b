"""RFC 9457 ``application/problem+json``: the one error shape of the API."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.keys import REQUEST_ID
from dispatch import errors as e

log = logging.getLogger("muster.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://muster.dev/problems/"

# Domain error class → (HTTP status, slug, title). Subclasses before their bases.
_MAP: list[tuple[type[e.DomainError], int, str, str]] = [
    (e.ValidationFailed, 422, "validation", "Invalid input"),
    (e.NotFound, 404, "not-found", "Not found"),
    (e.AlreadyExists, 409, "already-exists", "Already exists"),
    (e.PreconditionFailed, 412, "precondition-failed", "Precondition failed"),
    (e.StaleVersion, 409, "stale-version", "Stale version"),
    (e.Conflict, 409, "conflict", "Conflict"),
    (e.Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (e.Forbidden, 403, "forbidden", "Forbidden"),
    (e.PayloadTooLarge, 413, "payload-too-large", "Payload too large"),
    (e.UnsupportedMediaType, 415, "unsupported-media-type", "Unsupported media type"),
    (e.IdempotencyMismatch, 422, "idempotency-key-reused", "Idempotency-Key reused"),
    (e.RequestInProgress, 409, "request-in-progress", "Request in progress"),
]


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str = "",
    *,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """Build a problem+json response."""
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM, headers=headers)


def from_domain(exc: e.DomainError, request: web.Request) -> web.Response:
    """Map a domain error to its problem response."""
    for cls, status, slug, title in _MAP:
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": 'Bearer realm="muster"'} if status == 401 else None
            return problem_response(
                status,
                slug,
                title,
                str(exc),
                errors=[f.as_dict() for f in exc.errors],
                extra=exc.extra,
                instance=request.path,
                headers=headers,
            )
    return problem_response(400, "bad-request", "Bad request", str(exc), instance=request.path)


def from_http(exc: web.HTTPException, request: web.Request) -> web.Response:
    """Re-shape aiohttp's own HTTP errors (404 route, 405, 413...) as problems."""
    slug = {
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
    }.get(exc.status, f"http-{exc.status}")
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return problem_response(
        exc.status,
        slug,
        exc.reason,
        exc.text if exc.text != f"{exc.status}: {exc.reason}" else "",
        instance=request.path,
        headers=headers,
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into problem+json; log unexpected ones with the request id."""
    try:
        return await handler(request)
    except e.DomainError as exc:
        return from_domain(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http(exc, request)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID)})
        return problem_response(
            500,
            "internal",
            "Internal server error",
            "the error was logged",
            extra={"request_id": request.get(REQUEST_ID)},
            instance=request.path,
        )
