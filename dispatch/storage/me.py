"""Self-service for a volunteer token (bound to one person): own record, own assignments,
own messages, availability, check-in and check-out.

Other roles get :class:`Forbidden`; a person never reaches anyone else's data through these use
cases because the person id comes from the token, never from the request. Availability changes
bump the person's version, are audited, and ask the engine to re-plan (the candidate pool
changed), all in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from dispatch import delivery
from dispatch import roster as dom
from dispatch.access import Action, Principal
from dispatch.assignments import COMMITTED, Status
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import Conflict, Forbidden, NotFound
from dispatch.roster import Availability
from dispatch.storage import audit_log, outbox
from dispatch.storage import engine as engine_store
from dispatch.storage.assignments import to_json as assignment_json
from dispatch.storage.queries import queries

Q = queries("me")
PEOPLE = queries("people")
ASSIGNMENTS = queries("assignments")


def person_of(who: Principal, action: Action = Action.READ) -> str:
    """The person a volunteer token is bound to; :class:`Forbidden` for anyone else."""
    who.require("me", action)
    if who.person_id is None:
        raise Forbidden("this volunteer token is not bound to a person")
    return who.person_id


async def me(con: asyncpg.Connection, who: Principal) -> dict[str, Any]:
    """Own person record (with contacts and home), the active assignment, message positions."""
    pid = person_of(who)
    row = await con.fetchrow(PEOPLE.get, pid)
    if row is None:
        raise NotFound("the person of this token no longer exists")
    active = await con.fetchrow(Q.active_assignment, pid)
    return {
        "person": dom.to_json(dict(row), show_pii=True),
        "active_assignment": assignment_json(active) if active is not None else None,
        "messages": {
            "last_seq": await outbox.last_seq(con, pid),
            "last_acked_seq": await outbox.last_ack(con, pid),
        },
    }


async def assignments(
    con: asyncpg.Connection,
    who: Principal,
    *,
    statuses: list[str] | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Own assignments, by id, ``limit`` at most (fetch one more to know there is a next page)."""
    pid = person_of(who)
    rows = await con.fetch(ASSIGNMENTS.list, None, pid, None, statuses, cursor, limit)
    return [assignment_json(r) for r in rows]


async def messages(
    con: asyncpg.Connection, who: Principal, since: int, limit: int
) -> list[dict[str, Any]]:
    """Own outbox messages after ``since``, oldest first."""
    pid = person_of(who)
    return await outbox.after(con, pid, since, limit)


async def ack(con: asyncpg.Connection, who: Principal, seq: int, now: datetime) -> int:
    """Record that the person's client has every message up to ``seq``."""
    pid = person_of(who)
    return await outbox.record_ack(con, pid, seq, now)


async def _change(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    now: datetime,
    action: str,
    rewrite: Callable[[Availability], Availability],
    *,
    going_off_duty: bool,
    debounce_s: float,
) -> dict[str, Any]:
    pid = person_of(who, Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(PEOPLE.get_for_update, pid)
        if row is None:
            raise NotFound("the person of this token no longer exists")
        if going_off_duty:
            active = await con.fetchrow(Q.active_assignment, pid)
            if active is not None and Status(active["status"]) in COMMITTED:
                raise Conflict(
                    f"you are {active['status']} on assignment {active['id']}: report done "
                    "(or ask your coordinator to cancel it) before going off duty",
                    extra={"assignment": active["id"], "current_status": active["status"]},
                )
        current = dom.person_from_row(dict(row)).availability
        changed = rewrite(current)
        new = await con.fetchrow(Q.set_availability, pid, delivery.availability_json(changed), now)
        path = row["path"]
        before = dom.to_json(dict(row), show_pii=True)
        after = dom.to_json(dict(new) | {"path": path}, show_pii=True)
        await audit_log.record(con, ctx, AuditEntry(action, "person", pid, before, after))
        await engine_store.request_replan(con, now, f"{pid}: {action}", debounce_s)
        return after


async def set_availability(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    body: delivery.AvailabilityUpdate,
    now: datetime,
    *,
    debounce_s: float,
) -> dict[str, Any]:
    """Available or unavailable from ``now`` until ``body.until`` (a dated exception)."""
    person_of(who, Action.WRITE)
    end = delivery.window_end(body, now)
    available = body.status == "available"
    return await _change(
        con,
        who,
        ctx,
        now,
        "availability",
        lambda av: delivery.set_window(av, now, end, available, now=now),
        going_off_duty=not available,
        debounce_s=debounce_s,
    )


async def check_in(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, now: datetime, *, debounce_s: float
) -> dict[str, Any]:
    """On duty now, for a shift or until check-out."""
    return await _change(
        con,
        who,
        ctx,
        now,
        "check_in",
        lambda av: delivery.check_in(av, now),
        going_off_duty=False,
        debounce_s=debounce_s,
    )


async def check_out(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, now: datetime, *, debounce_s: float
) -> dict[str, Any]:
    """Off duty now; refused (409) while the person is committed to an assignment."""
    return await _change(
        con,
        who,
        ctx,
        now,
        "check_out",
        lambda av: delivery.check_out(av, now),
        going_off_duty=True,
        debounce_s=debounce_s,
    )
