"""The engine's storage: world loading, plan application, timers. Times come from a Clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatch import planning
from dispatch.assignments import Status
from dispatch.storage import plans as plans_store
from dispatch.storage.queries import queries

Q = queries("engine")


async def request_replan(
    con: asyncpg.Connection, now: datetime, reason: str, debounce_s: float = 1.0
) -> None:
    """Ask for a re-plan soon (debounced); call inside the transaction of the change.

    When a re-plan is already due at least as early and already lists the most reasons kept
    (19), the request is covered by it: nothing is written (its reason is not listed, and
    ``generation`` does not move: it only tells a running solve about requests made after its
    claim, and a pending request is claimed after this one). The pending request is
    key-share-locked instead, so that the engine's claim waits for this transaction to commit and
    the plan it then makes sees this change; concurrent requests share that lock rather than
    queueing on the row (nor on the notification queue: only a change wakes the engine).
    """
    due = now + timedelta(seconds=debounce_s)
    while True:
        if await con.fetchrow(Q.request_replan, due, reason[:200]) is not None:
            return
        if await con.fetchval(Q.hold_replan, due):
            return


async def replan_still_pending(
    con: asyncpg.Connection, now: datetime, reason: str, debounce_s: float = 1.0
) -> None:
    """After a change committed with its re-plan request covered by a pending one (see
    ``request_replan``; nothing held it): request a re-plan unless one is still pending. One
    pending after the commit is claimed after it, so the plan it leads to sees the change."""
    if not await con.fetchval(Q.replan_pending):
        await request_replan(con, now, reason, debounce_s)


async def send(
    con: asyncpg.Connection,
    person_id: str,
    kind: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    exercise: bool,
) -> int:
    """Queue a message to a person in the outbox (same transaction as the change)."""
    seq: int = await con.fetchval(Q.outbox, person_id, kind, payload, exercise, now)
    return seq


async def send_many(
    con: asyncpg.Connection,
    kind: str,
    messages: list[tuple[str, dict[str, Any]]],
    *,
    now: datetime,
    exercise: bool,
) -> None:
    """Queue one message per ``(person_id, payload)`` in one statement."""
    if not messages:
        return
    await con.execute(
        Q.outbox_many, [m[0] for m in messages], kind, [m[1] for m in messages], exercise, now
    )


@dataclass(frozen=True, slots=True)
class Expired:
    """An offer that ran out of time."""

    id: str
    person_id: str
    incident_id: str
    skill: str


async def expire_due(
    con: asyncpg.Connection, now: datetime, *, exercise: bool, debounce_s: float
) -> list[Expired]:
    """Expire every offer past its deadline, exactly once (the UPDATE is the claim)."""
    async with con.transaction():
        rows = await con.fetch(Q.expire_due, now)
        out = [Expired(r["id"], r["person_id"], r["incident_id"], r["skill"]) for r in rows]
        for e in out:
            await con.execute(Q.exclude_pair, e.person_id, e.incident_id, "expired", now, "engine")
        await send_many(
            con,
            "offer_expired",
            [(e.person_id, {"assignment": e.id, "incident": e.incident_id}) for e in out],
            now=now,
            exercise=exercise,
        )
        if out:
            await request_replan(con, now, f"{len(out)} offer(s) expired", debounce_s=0)
    return out


async def next_due(con: asyncpg.Connection) -> datetime | None:
    """The earliest moment the engine must wake (offer deadline or re-plan)."""
    due: datetime | None = await con.fetchval(Q.next_due)
    return due


async def state(con: asyncpg.Connection) -> dict[str, Any]:
    """The engine's timer row."""
    return dict(await con.fetchrow(Q.state))


async def claim_replan(con: asyncpg.Connection) -> tuple[int, list[str]]:
    """Take the pending request; returns its generation and reasons."""
    row = await con.fetchrow(Q.claim_replan)
    return row["generation"], list(row["reasons"])


async def generation(con: asyncpg.Connection) -> int:
    """How many re-plan requests have ever been made (a newer one supersedes a solve)."""
    g: int = await con.fetchval("SELECT generation FROM engine_state")
    return g


@dataclass(frozen=True, slots=True)
class Applied:
    """What a stored plan changed."""

    plan_id: int
    offers: list[dict[str, Any]]
    withdrawn: list[str]
    allocations: int


async def apply_plan(
    con: asyncpg.Connection,
    *,
    now: datetime,
    trigger: str,
    results: list[planning.GroupResult],
    changes: planning.Changes,
    expiry_s: dict[str, int],
    cadence_s: int | None,
    solve_seconds: float,
    exercise: bool,
    snapshot: bytes,
) -> Applied:
    """Store the plan with its snapshots and apply it, all in one transaction.

    ``snapshot``: the snapshots encoded by :func:`plans.encode_snapshot` (CPU work: the engine
    runs it in its executor, never on the event loop).
    """
    statuses = [r.plan["stats"]["status"] for r in results]
    status = "empty" if not results else ("feasible" if "feasible" in statuses else statuses[0])
    merged = {"groups": [{"key": r.key, "mode": r.mode, "plan": r.plan} for r in results]}
    methods = sorted({r.plan["stats"]["method"] for r in results}) or ["none"]
    async with con.transaction():
        plan_id = await plans_store.insert(
            con,
            now=now,
            trigger=trigger,
            snapshot=snapshot,
            result=merged,
            status=status,
            method="+".join(methods),
            solve_seconds=solve_seconds,
        )
        # Each statement only when it has something to do: most plans change little.
        released = (
            await con.fetch(Q.release_surplus, changes.release, now) if changes.release else []
        )
        for kind in ("offer_withdrawn", "released"):
            await send_many(
                con,
                kind,
                [
                    (
                        r["person_id"],
                        {
                            "assignment": r["id"],
                            "incident": r["incident_id"],
                            "why": "demand reduced",
                        },
                    )
                    for r in released
                    if (r["status"] == "withdrawn") == (kind == "offer_withdrawn")
                ],
                now=now,
                exercise=exercise,
            )
        withdrawn = await con.fetch(Q.withdraw, changes.withdraw, now) if changes.withdraw else []
        await send_many(
            con,
            "offer_withdrawn",
            [
                (w["person_id"], {"assignment": w["id"], "incident": w["incident_id"]})
                for w in withdrawn
            ],
            now=now,
            exercise=exercise,
        )
        offers = changes.offers
        rows = []
        if offers:
            rows = await con.fetch(
                Q.offer,
                [o.person_id for o in offers],
                [o.incident_id for o in offers],
                [o.skill for o in offers],
                [o.mode_key for o in offers],
                [o.travel_minutes for o in offers],
                [o.reason for o in offers],
                [now + timedelta(seconds=expiry_s.get(o.mode_key, 600)) for o in offers],
                plan_id,
                now,
            )
        made = [dict(r) for r in rows]
        await send_many(
            con,
            "offer",
            [(r["person_id"], offer_message(r)) for r in made],
            now=now,
            exercise=exercise,
        )
        allocated = 0
        for al in changes.allocations:
            ok = await con.fetchval(Q.reserve_stock, al["depot"], al["item"], al["quantity"])
            if ok is None:
                continue  # stock moved since the snapshot; the next re-plan sees the truth
            await con.execute(
                Q.insert_allocation,
                plan_id,
                al["depot"],
                al["incident"],
                al["item"],
                al["quantity"],
                al["mode_key"],
                al.get("travel_minutes"),
                now,
            )
            allocated += 1
        await con.execute(Q.plan_counts, plan_id, len(made), len(withdrawn), allocated)
        cadence = now + timedelta(seconds=cadence_s) if cadence_s else None
        await con.execute(Q.finish_plan, plan_id, now, cadence)
    return Applied(
        plan_id, made, [w["id"] for w in withdrawn] + [r["id"] for r in released], allocated
    )


def offer_message(row: Any) -> dict[str, Any]:
    """The ``offer`` message a planned offer sends its person (``row``: the assignment)."""
    return {
        "assignment": row["id"],
        "incident": row["incident_id"],
        "skill": row["skill"],
        "deadline": row["offer_deadline"].isoformat(),
        "travel_minutes": row["travel_minutes"],
        "reason": row["reason"],
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


__all__ = [
    "Applied",
    "Expired",
    "Status",
    "apply_plan",
    "expire_due",
    "next_due",
    "offer_message",
    "request_replan",
]
