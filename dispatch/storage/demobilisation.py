"""Stand-down: when a jurisdiction returns to routine, its emergency work is demobilised.

Everyone on an emergency assignment there is released (open offers are withdrawn) and told so;
hours worked are tallied per person; supplies reserved and not yet delivered go back to stock;
a stand-down summary is stored as the aftermath record. One transaction with the mode change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.access import Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import NotFound
from dispatch.storage import audit_log
from dispatch.storage import engine as engine_store
from dispatch.storage.allocations import AllocationStatus, stock_effect
from dispatch.storage.queries import queries

Q = queries("demobilisation")


async def stand_down(
    con: asyncpg.Connection,
    ctx: AuditContext,
    code: str,
    stood_down: list[str],
    reason: str,
    now: datetime,
    *,
    exercise: bool,
) -> dict[str, Any]:
    """Demobilise the incidents of the jurisdictions in ``stood_down``; returns the summary."""
    rows = await con.fetch(Q.active_in, stood_down)
    offered = [r for r in rows if r["status"] in ("proposed", "offered")]
    working = [r for r in rows if r["status"] not in ("proposed", "offered")]
    await con.execute(Q.withdraw_ids, [r["id"] for r in offered], now)
    await con.execute(Q.release_ids, [r["id"] for r in working], now)
    hours_rows = await con.fetch(Q.hours, stood_down, now)
    hours = {
        r["person_id"]: {"hours": r["hours"], "assignments": r["assignments"]} for r in hours_rows
    }
    await engine_store.send_many(
        con,
        "offer_withdrawn",
        [
            (
                r["person_id"],
                {"assignment": r["id"], "incident": r["incident_id"], "why": "stand-down"},
            )
            for r in offered
        ],
        now=now,
        exercise=exercise,
    )
    await engine_store.send_many(
        con,
        "released",
        [
            (
                r["person_id"],
                {
                    "assignment": r["id"],
                    "incident": r["incident_id"],
                    "why": "stand-down",
                    "hours_worked": hours.get(r["person_id"], {}).get("hours", 0.0),
                },
            )
            for r in working
        ],
        now=now,
        exercise=exercise,
    )
    returned: dict[str, int] = {}
    for al in await con.fetch(Q.open_allocations, stood_down):
        target = (
            AllocationStatus.CANCELLED if al["status"] == "reserved" else AllocationStatus.RETURNED
        )
        await stock_effect(con, al, target)
        await con.execute(
            f"UPDATE allocations SET status = $2, {target.value}_at = $3, version = version + 1"
            " WHERE id = $1",
            al["id"],
            target.value,
            now,
        )
        returned[al["item"]] = returned.get(al["item"], 0) + int(al["quantity"])
    total_hours = round(sum(h["hours"] for h in hours.values()), 2)
    summary = {
        "jurisdictions": sorted(stood_down),
        "released": len(working),
        "withdrawn": len(offered),
        "people": len(hours),
        "total_hours": total_hours,
        "supplies_returned": returned,
    }
    sid = await con.fetchval(
        Q.insert_stand_down,
        code,
        now,
        ctx.actor,
        reason,
        len(working),
        len(offered),
        returned,
        hours,
        summary,
    )
    out = {
        "id": sid,
        "jurisdiction": code,
        "at": now.isoformat(),
        "reason": reason,
        **summary,
        "hours": hours,
    }
    await audit_log.record(
        con, ctx, AuditEntry("stand_down", "stand_down", str(sid), None, summary)
    )
    return out


def to_json(row: Any) -> dict[str, Any]:
    """Public view of a stored stand-down."""
    return {
        "id": row["id"],
        "jurisdiction": row["jurisdiction_code"],
        "at": row["at"].isoformat(),
        "actor": row["actor"],
        "reason": row["reason"],
        "released": row["released"],
        "withdrawn": row["withdrawn"],
        "supplies_returned": row["supplies_returned"],
        "hours": row["hours"],
        "summary": row["summary"],
    }


async def get(con: asyncpg.Connection, who: Principal, sid: int) -> dict[str, Any]:
    """One stand-down summary in scope."""
    row = await con.fetchrow(Q.get_stand_down, sid)
    if row is None or not who.in_scope(row["path"]):
        raise NotFound(f"no stand-down {sid}")
    return to_json(row)


async def list_rows(
    con: asyncpg.Connection, who: Principal, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Stand-downs in scope, newest first."""
    rows = await con.fetch(Q.list_stand_downs, who.scope_path, before, limit)
    return [to_json(r) for r in rows]


async def release_incident(
    con: asyncpg.Connection, incident_id: str, now: datetime, *, why: str, exercise: bool
) -> dict[str, int]:
    """Free everyone and everything still held by one incident (it closed or was contained).

    Open offers are withdrawn, people at work are released, reserved supplies go back to free
    stock and dispatched ones are marked returned. Runs in the caller's transaction.
    """
    rows = await con.fetch(
        "SELECT id, person_id, status FROM assignments WHERE incident_id = $1"
        " AND status IN ('proposed', 'offered', 'accepted', 'en_route', 'on_scene') FOR UPDATE",
        incident_id,
    )
    offered = [r for r in rows if r["status"] in ("proposed", "offered")]
    working = [r for r in rows if r["status"] not in ("proposed", "offered")]
    await con.execute(Q.withdraw_ids, [r["id"] for r in offered], now)
    await con.execute(Q.release_ids, [r["id"] for r in working], now)
    payload = {"incident": incident_id, "why": why}
    await engine_store.send_many(
        con,
        "offer_withdrawn",
        [(r["person_id"], {**payload, "assignment": r["id"]}) for r in offered],
        now=now,
        exercise=exercise,
    )
    await engine_store.send_many(
        con,
        "released",
        [(r["person_id"], {**payload, "assignment": r["id"]}) for r in working],
        now=now,
        exercise=exercise,
    )
    allocs = await con.fetch(
        "SELECT * FROM allocations WHERE incident_id = $1 AND status = 'reserved' FOR UPDATE",
        incident_id,
    )
    for al in allocs:
        await stock_effect(con, al, AllocationStatus.CANCELLED)
        await con.execute(
            "UPDATE allocations SET status = 'cancelled', cancelled_at = $2,"
            " version = version + 1 WHERE id = $1",
            al["id"],
            now,
        )
    return {
        "withdrawn": len(offered),
        "released": len(working),
        "allocations_cancelled": len(allocs),
    }
