"""Writing and verifying the append-only, hash-chained audit log."""

from __future__ import annotations

from typing import Any

import asyncpg

from dispatch.audit import AuditContext, AuditEntry, ChainReport
from dispatch.storage.queries import queries

Q = queries("audit")
GENESIS = "0" * 64


async def record(con: asyncpg.Connection, ctx: AuditContext, entry: AuditEntry) -> int:
    """Append ``entry``; call inside the transaction that makes the change.

    Returns the row's id; its chain position (``seq``) and hash are assigned when the
    transaction commits, or, when another commit is sealing at that moment, by the next seal
    (:func:`seal`; migration 0010 explains why).
    """
    row_id: int = await con.fetchval(
        Q.insert_entry,
        ctx.actor,
        ctx.actor_role,
        entry.action,
        entry.object_type,
        entry.object_id,
        entry.before,
        entry.after,
        ctx.request_id,
    )
    return row_id


async def seal(con: asyncpg.Connection) -> int:
    """Seal every committed row not yet in the chain; returns how many were sealed."""
    sealed: int = await con.fetchval(Q.seal)
    return sealed


async def list_entries(
    con: asyncpg.Connection,
    *,
    after_seq: int | None,
    object_type: str | None,
    object_id: str | None,
    actor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries in chain order, filtered, starting after ``after_seq`` (pending rows sealed first)."""
    await seal(con)
    rows = await con.fetch(Q.list_entries, after_seq, object_type, object_id, actor, limit)
    return [dict(r) for r in rows]


async def verify(con: asyncpg.Connection) -> ChainReport:
    """Seal what is pending, then check every row's hash and link; report the first broken row."""
    await seal(con)
    count = 0
    head: str | None = None
    async with con.transaction(isolation="repeatable_read", readonly=True):
        async for row in con.cursor(Q.verify_chain):
            count += 1
            seq = row["seq"]
            expected_prev = row["previous_hash"] if row["previous_seq"] is not None else GENESIS
            if row["previous_seq"] is not None and row["previous_seq"] != seq - 1:
                return ChainReport(count, False, head, seq, f"row {seq - 1} is missing")
            if row["previous_seq"] is None and seq != 1:
                return ChainReport(count, False, head, seq, "rows before this one are missing")
            if row["prev_hash"] != expected_prev:
                return ChainReport(count, False, head, seq, "link to the previous row is broken")
            if row["hash"] != row["expected_hash"]:
                return ChainReport(count, False, head, seq, "row content does not match its hash")
            head = row["hash"]
    return ChainReport(count, True, head)
