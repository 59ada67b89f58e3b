"""Webhook storage: endpoint use cases (admin-only, scope-checked, audited) and the delivery
queue the dispatcher works from. Times come from the caller's Clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatch import webhooks as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import Conflict, NotFound
from dispatch.storage import audit_log
from dispatch.storage.jurisdictions import path_of
from dispatch.storage.queries import queries

Q = queries("webhooks")


# --- endpoints --------------------------------------------------------------------------------


async def _endpoint(
    con: asyncpg.Connection, who: Principal, endpoint_id: str, *, for_update: bool = False
) -> dict[str, Any]:
    row = await con.fetchrow(
        Q.get_endpoint_for_update if for_update else Q.get_endpoint, endpoint_id
    )
    if row is None or not who.in_scope(row["path"]):
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return dict(row)


async def create(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    body: dom.EndpointCreate,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """Register an endpoint in the caller's scope; returns ``(secret, public view)``."""
    who.require("webhook", Action.WRITE)
    async with con.transaction():
        who.require_scope(await path_of(con, body.jurisdiction, loc="/jurisdiction"))
        secret = dom.new_secret()
        row = await con.fetchrow(
            Q.insert_endpoint,
            body.url,
            body.jurisdiction,
            body.kinds,
            body.description,
            secret,
            body.enabled,
            now,
        )
        out = dom.to_json(dict(row))
        await audit_log.record(con, ctx, AuditEntry("create", "webhook", out["id"], None, out))
    return secret, out


async def get(con: asyncpg.Connection, who: Principal, endpoint_id: str) -> dict[str, Any]:
    """One endpoint in scope, with counts of its deliveries by status."""
    who.require("webhook", Action.READ)
    row = await _endpoint(con, who, endpoint_id)
    stats = await con.fetchrow(Q.endpoint_stats, endpoint_id)
    return {**dom.to_json(row), "deliveries": dict(stats)}


async def list_endpoints(
    con: asyncpg.Connection, who: Principal, cursor: str | None, limit: int
) -> list[dict[str, Any]]:
    """Endpoints in scope, ordered by id, ``limit`` at most."""
    who.require("webhook", Action.READ)
    rows = await con.fetch(Q.list_endpoints, who.scope_path, cursor, limit)
    return [dom.to_json(dict(r)) for r in rows]


async def update(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    endpoint_id: str,
    patch: dom.EndpointPatch,
    if_match: int | None,
    now: datetime,
) -> dict[str, Any]:
    """Change URL, kinds, description or enabled; optimistic concurrency via version/If-Match."""
    who.require("webhook", Action.WRITE)
    async with con.transaction():
        row = await _endpoint(con, who, endpoint_id, for_update=True)
        check_version(row["version"], body_version=patch.version, if_match=if_match)
        before = dom.to_json(row)
        fields = patch.model_fields_set
        new = await con.fetchrow(
            Q.update_endpoint,
            endpoint_id,
            patch.url if "url" in fields and patch.url is not None else row["url"],
            patch.kinds if "kinds" in fields else row["kinds"],
            patch.description if patch.description is not None else row["description"],
            patch.enabled if patch.enabled is not None else row["enabled"],
            now,
        )
        after = dom.to_json(dict(new))
        await audit_log.record(
            con, ctx, AuditEntry("update", "webhook", endpoint_id, before, after)
        )
        if after["enabled"] and not before["enabled"]:
            await con.execute(Q.notify, "enabled")
    return after


async def delete(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    endpoint_id: str,
    if_match: int | None,
) -> None:
    """Remove an endpoint and its delivery history (the audit log keeps the endpoint)."""
    who.require("webhook", Action.WRITE)
    async with con.transaction():
        row = await _endpoint(con, who, endpoint_id, for_update=True)
        check_version(row["version"], body_version=None, if_match=if_match)
        await con.execute(Q.delete_endpoint, endpoint_id)
        await audit_log.record(
            con, ctx, AuditEntry("delete", "webhook", endpoint_id, dom.to_json(row), None)
        )


async def rotate_secret(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    endpoint_id: str,
    body: dom.RotateSecret,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """A new signing secret; the old one keeps signing for ``grace_seconds`` (0 = not at all)."""
    who.require("webhook", Action.WRITE)
    async with con.transaction():
        row = await _endpoint(con, who, endpoint_id, for_update=True)
        secret = dom.new_secret()
        keep_until = now + timedelta(seconds=body.grace_seconds) if body.grace_seconds else None
        new = await con.fetchrow(Q.rotate_secret, endpoint_id, secret, keep_until, now)
        after = dom.to_json(dict(new))
        await audit_log.record(
            con,
            ctx,
            AuditEntry("rotate_secret", "webhook", endpoint_id, dom.to_json(row), after),
        )
    return secret, after


# --- deliveries (admin) -----------------------------------------------------------------------


def _delivery_uuid(delivery_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(delivery_id)
    except ValueError:
        raise NotFound(f"no delivery {delivery_id!r}") from None


async def list_deliveries(
    con: asyncpg.Connection,
    who: Principal,
    endpoint_id: str,
    *,
    status: str | None,
    cursor: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Deliveries of an endpoint in message order; rows keep ``n`` for the cursor."""
    who.require("webhook", Action.READ)
    await _endpoint(con, who, endpoint_id)
    rows = await con.fetch(Q.list_deliveries, endpoint_id, status, cursor, limit)
    return [dict(r) for r in rows]


async def replay(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    endpoint_id: str,
    delivery_id: str,
    now: datetime,
) -> dict[str, Any]:
    """A dead-lettered delivery back to pending with its attempts reset, due now."""
    who.require("webhook", Action.WRITE)
    did = _delivery_uuid(delivery_id)
    async with con.transaction():
        await _endpoint(con, who, endpoint_id)
        row = await con.fetchrow(Q.replay_one, endpoint_id, did, now)
        if row is None:
            status = await con.fetchval(Q.delivery_status, endpoint_id, did)
            if status is None:
                raise NotFound(f"no delivery {delivery_id!r} for this endpoint")
            raise Conflict(f"only dead deliveries can be replayed; this one is {status}")
        out = dom.delivery_to_json(dict(row))
        await audit_log.record(
            con,
            ctx,
            AuditEntry("replay", "webhook_delivery", out["id"], {"status": "dead"}, out),
        )
        await con.execute(Q.notify, "replay")
    return out


async def replay_dead(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, endpoint_id: str, now: datetime
) -> int:
    """Every dead delivery of the endpoint back to pending; returns how many."""
    who.require("webhook", Action.WRITE)
    async with con.transaction():
        await _endpoint(con, who, endpoint_id)
        ids = [str(r["id"]) for r in await con.fetch(Q.replay_dead, endpoint_id, now)]
        if ids:
            await audit_log.record(
                con,
                ctx,
                AuditEntry("replay_dead", "webhook", endpoint_id, None, {"deliveries": ids}),
            )
            await con.execute(Q.notify, "replay")
    return len(ids)


# --- the delivery queue (dispatcher) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """An endpoint leased to one dispatcher, with the secrets that sign for it now."""

    endpoint_id: str
    url: str
    secrets: list[str]


async def claim_endpoint(
    con: asyncpg.Connection, now: datetime, lease_until: datetime, owner: str
) -> Claim | None:
    """Lease one endpoint with due deliveries (``FOR UPDATE SKIP LOCKED``), or ``None``."""
    row = await con.fetchrow(Q.claim_endpoint, now, lease_until, owner)
    if row is None:
        return None
    keys = [row["secret"]]
    if row["previous_secret"] is not None and row["previous_secret_expires_at"] > now:
        keys.append(row["previous_secret"])
    return Claim(row["id"], row["url"], keys)


async def due_batch(
    con: asyncpg.Connection, endpoint_id: str, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """The endpoint's due deliveries with their messages, in message order."""
    return [dict(r) for r in await con.fetch(Q.due_batch, endpoint_id, now, limit)]


async def record_delivered(
    con: asyncpg.Connection,
    delivery_id: uuid.UUID,
    now: datetime,
    status_code: int,
    lease: tuple[str, str, datetime],
) -> None:
    """Mark delivered and extend the endpoint's lease, in one transaction."""
    async with con.transaction():
        await con.execute(Q.record_delivered, delivery_id, now, status_code)
        await con.execute(Q.renew_lease, *lease)


async def record_failed(
    con: asyncpg.Connection,
    delivery_id: uuid.UUID,
    now: datetime,
    status_code: int | None,
    error: str,
    next_attempt: datetime | None,
    lease: tuple[str, str, datetime],
) -> None:
    """Count a failed attempt: retry at ``next_attempt``, or dead-letter when it is ``None``."""
    async with con.transaction():
        await con.execute(
            Q.record_failed, delivery_id, now, status_code, error[:1000], next_attempt
        )
        await con.execute(Q.renew_lease, *lease)


async def release(con: asyncpg.Connection, endpoint_id: str, owner: str) -> None:
    """Give the endpoint's lease back."""
    await con.execute(Q.release_lease, endpoint_id, owner)


async def next_due(con: asyncpg.Connection) -> datetime | None:
    """When the next pending delivery becomes sendable."""
    due: datetime | None = await con.fetchval(Q.next_due)
    return due
