"""Per-request context handed to the domain: who acts, under which request id."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from api.keys import CLOCK, PRINCIPAL, REQUEST_ID
from dispatch.audit import AuditContext


def audit_ctx(request: web.Request, *, at: datetime | None = None) -> AuditContext:
    """The audit context of an authenticated request, at ``at`` (by default: now)."""
    who = request[PRINCIPAL]
    return AuditContext(
        actor=who.actor,
        actor_role=who.role.value,
        request_id=request.get(REQUEST_ID),
        at=at or request.app[CLOCK].now(),
    )
