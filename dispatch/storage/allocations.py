"""Supply allocations: reserved by a plan, then dispatched, delivered or returned.

Stock moves in the same transaction as the status: reserving raises ``reserved``; dispatching
takes the units out (``quantity`` and ``reserved`` fall); cancelling a reservation frees it;
returning dispatched units puts them back. The CHECK constraints on ``stock`` are the guard.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import asyncpg

from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import Conflict, NotFound
from dispatch.storage import audit_log
from dispatch.storage.queries import queries
from dispatch.validation import Strict

Q = queries("allocations")


class AllocationStatus(StrEnum):
    """Lifecycle of an allocation."""

    RESERVED = "reserved"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"


_NEXT = {
    AllocationStatus.RESERVED: {AllocationStatus.DISPATCHED, AllocationStatus.CANCELLED},
    AllocationStatus.DISPATCHED: {AllocationStatus.DELIVERED, AllocationStatus.RETURNED},
}


class AllocationMove(Strict):
    """Body of ``POST /v1/allocations/{id}/status``."""

    status: Literal["dispatched", "delivered", "returned", "cancelled"]


def to_json(row: Any) -> dict[str, Any]:
    """Public view of an allocation."""
    out = {
        k: row[k]
        for k in (
            "id",
            "plan_id",
            "depot_id",
            "incident_id",
            "item",
            "quantity",
            "status",
            "mode_key",
            "travel_minutes",
            "version",
        )
    }
    for k in ("reserved_at", "dispatched_at", "delivered_at", "returned_at", "cancelled_at"):
        out[k] = row[k].isoformat() if row[k] is not None else None
    return out


async def stock_effect(con: asyncpg.Connection, row: Any, target: AllocationStatus) -> None:
    """Apply the stock movement that ``row``'s move to ``target`` implies."""
    args = (row["depot_id"], row["item"], row["quantity"])
    try:
        if target is AllocationStatus.DISPATCHED:
            await con.execute(Q.take_out, *args)
        elif target is AllocationStatus.CANCELLED:
            await con.execute(Q.release_reserved, *args)
        elif target is AllocationStatus.RETURNED:
            await con.execute(Q.put_back, *args)
    except asyncpg.CheckViolationError:
        raise Conflict("the depot's stock no longer allows this movement") from None


async def move(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    allocation_id: str,
    target: AllocationStatus,
    now: datetime,
) -> dict[str, Any]:
    """Move an allocation along its lifecycle with its stock effect, audited."""
    who.require("depot", Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(Q.get_for_update, allocation_id)
        if row is None or not who.in_scope(row["path"]):
            raise NotFound(f"no allocation {allocation_id!r}")
        current = AllocationStatus(row["status"])
        if target not in _NEXT.get(current, set()):
            raise Conflict(f"a {current.value} allocation cannot become {target.value}")
        await stock_effect(con, row, target)
        new = await con.fetchrow(
            f"UPDATE allocations SET status = $2, {target.value}_at = $3, version = version + 1"
            " WHERE id = $1 RETURNING *",
            allocation_id,
            target.value,
            now,
        )
        before, after = to_json(row), to_json(new)
        await audit_log.record(
            con, ctx, AuditEntry(target.value, "allocation", allocation_id, before, after)
        )
        return after


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    incident: str | None,
    depot: str | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Allocations in scope."""
    who.require("depot", Action.READ)
    rows = await con.fetch(Q.list, who.scope_path, incident, depot, cursor, limit)
    return [to_json(r) for r in rows]
