"""Incident storage and use cases: scope-checked, audited, one transaction each.

``create``, ``update`` and ``set_status`` take an optional ``on_change`` hook, awaited inside the
transaction with the connection and the before/after representations (``before`` is ``None`` on
create), before the audit row is written. The dispatch engine uses it to schedule a re-plan in the
same transaction when :func:`dispatch.incidents.demand_changed` says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from dispatch import incidents as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import AlreadyExists, Conflict, FieldError, NotFound
from dispatch.storage import audit_log
from dispatch.storage.jurisdictions import path_of
from dispatch.storage.queries import queries
from dispatch.storage.supplies import require_items

Q = queries("incidents")

ChangeHook = Callable[[asyncpg.Connection, dict[str, Any] | None, dict[str, Any]], Awaitable[None]]


def _demands(demands: Sequence[dom.Demand]) -> list[dict[str, Any]]:
    return [d.model_dump() for d in demands]


async def _in_scope(
    con: asyncpg.Connection, who: Principal, incident_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    row = await con.fetchrow(Q.get_for_update if for_update else Q.get, incident_id)
    if row is None or not who.in_scope(row["path"]):
        raise NotFound(f"no incident {incident_id!r}")
    return dict(row)


async def get(con: asyncpg.Connection, who: Principal, incident_id: str) -> dict[str, Any]:
    """An incident in the caller's scope, or :class:`NotFound` (scope is not leaked)."""
    who.require("incident", Action.READ)
    return dom.to_json(await _in_scope(con, who, incident_id))


async def create(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    body: dom.IncidentCreate,
    *,
    on_change: ChangeHook | None = None,
) -> dict[str, Any]:
    """Declare an incident in a jurisdiction inside the caller's scope."""
    who.require("incident", Action.WRITE)
    incident_id = body.id or f"inc-{uuid.uuid4().hex[:12]}"
    async with con.transaction():
        who.require_scope(await path_of(con, body.jurisdiction))
        await require_items(con, list(body.supplies), "/supplies")
        try:
            row = await con.fetchrow(
                Q.insert,
                incident_id,
                body.type,
                body.title,
                body.description,
                body.location.lat,
                body.location.lon,
                body.jurisdiction,
                body.priority,
                body.status.value,
                _demands(body.demands),
                dict(body.supplies),
                ctx.at,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"incident {incident_id!r} already exists",
                errors=[FieldError("/id", "already exists")],
            ) from None
        await con.execute(
            Q.history_insert,
            incident_id,
            None,
            body.status.value,
            "",
            ctx.actor,
            ctx.request_id,
            ctx.at,
        )
        out = dom.to_json(dict(row))
        if on_change is not None:
            await on_change(con, None, out)
        await audit_log.record(con, ctx, AuditEntry("create", "incident", incident_id, None, out))
        return out


async def update(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    incident_id: str,
    patch: dom.IncidentPatch,
    if_match: int | None,
    *,
    on_change: ChangeHook | None = None,
) -> dict[str, Any]:
    """Change an open incident; moving it to another jurisdiction needs scope over that one."""
    who.require("incident", Action.WRITE)
    async with con.transaction():
        row = await _in_scope(con, who, incident_id, for_update=True)
        check_version(row["version"], body_version=patch.version, if_match=if_match)
        if row["status"] == dom.IncidentStatus.CLOSED.value:
            raise Conflict(
                f"incident {incident_id!r} is closed and can no longer change",
                extra={"current_status": row["status"]},
            )
        before = dom.to_json(row)
        jurisdiction = row["jurisdiction_code"]
        if patch.jurisdiction is not None and patch.jurisdiction != jurisdiction:
            who.require_scope(await path_of(con, patch.jurisdiction))
            jurisdiction = patch.jurisdiction
        if patch.supplies is not None:
            await require_items(con, list(patch.supplies), "/supplies")
        loc = patch.location
        new = await con.fetchrow(
            Q.update,
            incident_id,
            patch.type if patch.type is not None else row["type"],
            patch.title if patch.title is not None else row["title"],
            patch.description if patch.description is not None else row["description"],
            loc.lat if loc else row["lat"],
            loc.lon if loc else row["lon"],
            jurisdiction,
            patch.priority if patch.priority is not None else row["priority"],
            _demands(patch.demands) if patch.demands is not None else row["demands"],
            dict(patch.supplies) if patch.supplies is not None else row["supplies"],
        )
        after = dom.to_json(dict(new))
        if on_change is not None:
            await on_change(con, before, after)
        await audit_log.record(
            con, ctx, AuditEntry("update", "incident", incident_id, before, after)
        )
        return after


async def set_status(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    incident_id: str,
    body: dom.StatusChange,
    if_match: int | None,
    *,
    on_change: ChangeHook | None = None,
) -> dict[str, Any]:
    """Move an incident along its lifecycle; an illegal move is a :class:`Conflict`."""
    who.require("incident", Action.WRITE)
    async with con.transaction():
        row = await _in_scope(con, who, incident_id, for_update=True)
        check_version(row["version"], body_version=body.version, if_match=if_match)
        target = dom.transition(row["status"], body.status)
        before = dom.to_json(row)
        new = await con.fetchrow(Q.set_status, incident_id, target.value, ctx.at)
        await con.execute(
            Q.history_insert,
            incident_id,
            row["status"],
            target.value,
            body.reason,
            ctx.actor,
            ctx.request_id,
            ctx.at,
        )
        after = dom.to_json(dict(new))
        if on_change is not None:
            await on_change(con, before, after)
        entry_after = after | ({"reason": body.reason} if body.reason else {})
        await audit_log.record(
            con, ctx, AuditEntry("status", "incident", incident_id, before, entry_after)
        )
        return after


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    jurisdiction: str | None,
    statuses: list[str] | None,
    priorities: list[int] | None,
    type_: str | None,
    open_only: bool,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Incidents in scope matching the filters, ordered by id, ``limit`` at most."""
    who.require("incident", Action.READ)
    under = None
    if jurisdiction is not None:
        under = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", jurisdiction)
        if under is None:
            return []
    rows = await con.fetch(
        Q.list, who.scope_path, under, statuses, priorities, type_, open_only, cursor, limit
    )
    return [dom.to_json(dict(r)) for r in rows]
