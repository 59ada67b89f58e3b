"""Answers to offers, progress reports, coordinator overrides (pin, forbid, cancel, unlock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatch.access import Action, Principal, Role
from dispatch.assignments import ACTIVE, STAMP, Status, check_move
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import Conflict, FieldError, NotFound, ValidationFailed
from dispatch.storage import audit_log
from dispatch.storage import engine as engine_store
from dispatch.storage.queries import queries

Q = queries("assignments")

_TIMES = (
    "proposed_at",
    "offered_at",
    "accepted_at",
    "declined_at",
    "expired_at",
    "en_route_at",
    "on_scene_at",
    "released_at",
    "withdrawn_at",
    "cancelled_at",
    "offer_deadline",
)


def to_json(row: Any) -> dict[str, Any]:
    """Public view of an assignment, with the incident it belongs to."""
    out: dict[str, Any] = {
        "id": row["id"],
        "person": row["person_id"],
        "incident": row["incident_id"],
        "skill": row["skill"],
        "status": row["status"],
        "mode": row["mode_key"],
        "plan": row["plan_id"],
        "locked": row["locked"],
        "pinned": row["pinned"],
        "travel_minutes": row["travel_minutes"],
        "reason": row["reason"],
        "decline_reason": row["decline_reason"],
        "version": row["version"],
    }
    for col in _TIMES:
        value = row[col]
        out[col] = value.isoformat() if value is not None else None
    if "incident_title" in row:
        out["incident_detail"] = {
            "title": row["incident_title"],
            "priority": row["incident_priority"],
            "location": {"lat": row["incident_lat"], "lon": row["incident_lon"]},
            "jurisdiction": row["jurisdiction_code"],
        }
    return out


def _visible(who: Principal, row: Any) -> bool:
    if who.role is Role.VOLUNTEER:
        return bool(row["person_id"] == who.person_id)
    if who.role in (Role.ADMIN, Role.COORDINATOR, Role.OBSERVER):
        return who.in_scope(row["incident_path"])
    return False


async def get(con: asyncpg.Connection, who: Principal, assignment_id: str) -> dict[str, Any]:
    """One assignment the caller may see; 404 otherwise (existence is not leaked)."""
    row = await con.fetchrow(Q.get, assignment_id)
    if row is None or not _visible(who, row):
        raise NotFound(f"no assignment {assignment_id!r}")
    return to_json(row)


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    person: str | None,
    incident: str | None,
    statuses: list[str] | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Assignments in scope (a volunteer sees only their own)."""
    if who.role is Role.VOLUNTEER:
        person = who.person_id
        scope = None
    elif who.role in (Role.ADMIN, Role.COORDINATOR, Role.OBSERVER):
        scope = who.scope_path
    else:
        raise NotFound("no assignments here")
    rows = await con.fetch(Q.list, scope, person, incident, statuses, cursor, limit)
    return [to_json(r) for r in rows]


#: Appends the audit row in the statement that moves the assignment (the columns of
#: ``audit.insert_entry``); ``{n}`` is the first of its five parameters.
_AUDIT_MOVED = (
    "INSERT INTO audit_log (actor, actor_role, action, object_type, object_id, before, after,"
    " request_id) SELECT ${n}, ${a}, $2, 'assignment', $1, ${b}::jsonb, ${c}::jsonb, ${d}"
    " FROM moved"
)


async def _move(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    assignment_id: str,
    target: Status,
    now: datetime,
    *,
    own_only: bool,
    changes: dict[str, Any] | None = None,
    also: str = "",
    also_args: tuple[Any, ...] = (),
    result: str = "NULL",
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Check visibility and the lifecycle, move and audit. Returns (before, after, result).

    Optimistic: one round trip reads the row (with what the caller may see of it and the row
    version's ``xmin``), one moves exactly that version and appends the audit entry together
    (``after`` is known in advance: the move sets only the columns named here, and no trigger
    changes a row). If anything changed the row in between, nothing is written and the move
    starts over from a fresh read (which may now refuse it). Atomic on its own, so a caller
    without further writes needs no transaction (no BEGIN/COMMIT round trips); inside one, the
    move holds the row's lock from its statement on. ``changes`` are further columns to set;
    ``also`` is more data-modifying CTEs (they may read ``moved``'s id, person_id and
    incident_id, and use ``$3``, the time of the move, ``${n}``, the actor, and ``${r}``,
    ``${r+1}``... for ``also_args``); ``result`` is one more value the statement returns
    (third in the answer, with ``before`` and ``after``).
    """
    extra = dict(changes or {})
    assert set(extra) <= _SETTABLE  # the column names come from a fixed table, never input
    stamp = STAMP[target]
    assert stamp in _TIMES  # likewise
    sets = "".join(f", {col} = ${4 + k}" for k, col in enumerate(extra))
    n = 4 + len(extra)
    audit = _AUDIT_MOVED.format(n=n, a=n + 1, b=n + 2, c=n + 3, d=n + 4)
    sql = (
        f"WITH moved AS (UPDATE assignments SET status = $2, {stamp} = $3,"
        f" version = version + 1{sets} WHERE id = $1 AND xmin = ${n + 5}::xid"
        f" RETURNING id, person_id, incident_id),"
        f" audited AS ({audit}){also.format(n=n, r=n + 6)}"
        f" SELECT (SELECT count(*) FROM moved) AS moved, {result} AS result"
    )
    while True:
        row = await con.fetchrow(Q.get_versioned, assignment_id)
        before, after = planned_move(
            who, row, assignment_id, target, now, own_only=own_only, changes=extra
        )
        done = await con.fetchrow(
            sql,
            assignment_id,
            target.value,
            now,
            *extra.values(),
            ctx.actor,
            ctx.actor_role,
            before,
            after,
            ctx.request_id,
            row["row_xmin"],
            *also_args,
        )
        if done["moved"]:
            return before, after, done["result"]


def planned_move(
    who: Principal,
    row: Any,
    assignment_id: str,
    target: Status,
    now: datetime,
    *,
    own_only: bool,
    changes: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a move on the row as read (``Q.get_versioned``'s columns; ``None`` or an ``id`` of
    ``None`` if there is no such assignment): visibility (404 without leaking existence), the
    caller's right, the offer's deadline and the lifecycle. Returns the public views
    ``(before, after)``; ``after`` is exactly what the database holds once the move is made
    (it sets only status, its timestamp, the version and ``changes``)."""
    if row is None or row["id"] is None or not _visible(who, row):
        raise NotFound(f"no assignment {assignment_id!r}")
    if not own_only or who.role is not Role.VOLUNTEER:
        who.require("incident", Action.WRITE)
    current = Status(row["status"])
    if (
        current is Status.OFFERED
        and target in (Status.ACCEPTED, Status.DECLINED)
        and row["offer_deadline"] <= now
    ):
        raise Conflict("this offer has expired", extra={"current_status": "expired"})
    check_move(current, target)
    before = to_json(row)
    # The public view names the settable columns as they are named in the table.
    after = {
        **before,
        **(changes or {}),
        "status": target.value,
        STAMP[target]: now.astimezone(UTC).isoformat(),  # as the database will hand it back
        "version": row["version"] + 1,
    }
    return before, after


#: Columns a move may set besides status, its timestamp and the version.
_SETTABLE = frozenset({"locked", "decline_reason"})


async def accept(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, assignment_id: str, now: datetime
) -> dict[str, Any]:
    """The person says yes: the assignment is locked for the solver (one atomic statement)."""
    _, after, _ = await _move(
        con,
        who,
        ctx,
        assignment_id,
        Status.ACCEPTED,
        now,
        own_only=True,
        changes={"locked": True},
    )
    return after


#: ``upsert_rule`` for the person and incident of the moved row, as a CTE of the move.
_DECLINED_RULE = (
    ", ruled AS (INSERT INTO pair_rules (person_id, incident_id, rule, skill, created_at,"
    " created_by) SELECT person_id, incident_id, 'declined', NULL, $3, ${n} FROM moved"
    " ON CONFLICT (person_id, incident_id) DO UPDATE SET rule = EXCLUDED.rule,"
    " skill = EXCLUDED.skill, created_at = EXCLUDED.created_at,"
    " created_by = EXCLUDED.created_by RETURNING 1)"
)


#: ``engine.request_replan`` for the moved row, as a CTE of the move (keep the two in step):
#: the re-plan is due at ``${r}`` unless one is due as early and lists its 19 reasons. The
#: engine's row must be locked last, as in every transaction that requests a re-plan (or two
#: such transactions can deadlock): ``replanned`` reads ``ruled`` and ``keyed`` so that it runs
#: after them, and ``keyed`` takes the locks of the pair rule's foreign keys, which their checks
#: would otherwise take at the end of the statement (after ``replanned``, the one CTE the
#: result reads, hence run first): e.g. an incident update holds the incident, then asks for a
#: re-plan.
_DECLINED_REPLAN = (
    ", keyed AS (SELECT FROM moved AS m JOIN people AS p ON p.id = m.person_id"
    " JOIN incidents AS i ON i.id = m.incident_id FOR KEY SHARE OF p, i)"
    ", replanned AS (UPDATE engine_state"
    " SET replan_due_at = LEAST(COALESCE(replan_due_at, ${r}::timestamptz), ${r}::timestamptz),"
    " generation = generation + 1, reasons = (reasons || (SELECT left(person_id || ' declined '"
    " || incident_id, 200) FROM moved))[greatest(1, cardinality(reasons) - 18):]"
    " WHERE EXISTS (SELECT FROM ruled) AND EXISTS (SELECT FROM keyed) AND (replan_due_at IS NULL"
    " OR replan_due_at > ${r}::timestamptz OR cardinality(reasons) < 19) RETURNING generation)"
)
#: The statement's result: whether it requested the re-plan (and then woke the engine).
_WOKE = "(SELECT count(pg_notify(muster_channel('muster_engine'), 'replan')::text) FROM replanned)"


async def decline(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    assignment_id: str,
    reason: str,
    now: datetime,
    *,
    debounce_s: float,
) -> dict[str, Any]:
    """The person says no: never offered this incident again; the gap is re-planned.

    One statement moves the offer, audits it, writes the pair rule (never offer this incident
    again) and requests the re-plan, atomically without a transaction of its own. When a
    pending re-plan already covered the request (nothing written to the engine's row), a read
    after the commit makes sure one is still pending — the engine may have claimed it, and read
    the world, before the decline was visible — and requests one otherwise. Inside a caller's
    transaction the pending re-plan is held instead (``engine.request_replan``).
    """
    due = now + timedelta(seconds=debounce_s)
    _, after, replanned = await _move(
        con,
        who,
        ctx,
        assignment_id,
        Status.DECLINED,
        now,
        own_only=True,
        changes={"decline_reason": reason},
        also=_DECLINED_RULE + _DECLINED_REPLAN,
        also_args=(due,),
        result=_WOKE,
    )
    if not replanned:
        why = f"{after['person']} declined {after['incident']}"
        if con.is_in_transaction():
            await engine_store.request_replan(con, now, why, debounce_s)
        else:
            await engine_store.replan_still_pending(con, now, why, debounce_s)
    return after


async def report_status(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    assignment_id: str,
    target: Status,
    now: datetime,
    position: tuple[float, float] | None,
) -> dict[str, Any]:
    """En route, on scene, done (released), optionally with a position."""
    async with con.transaction():
        _, after, _ = await _move(con, who, ctx, assignment_id, target, now, own_only=True)
        if position is not None:
            await con.execute(Q.set_position, assignment_id, position[0], position[1])
        return after


async def cancel(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    assignment_id: str,
    now: datetime,
    *,
    exercise: bool,
    debounce_s: float,
) -> dict[str, Any]:
    """A coordinator cancels an assignment; the person is told and the gap re-planned."""
    async with con.transaction():
        _, after, _ = await _move(
            con, who, ctx, assignment_id, Status.CANCELLED, now, own_only=False
        )
        await engine_store.send(
            con,
            after["person"],
            "assignment_cancelled",
            {"assignment": assignment_id, "incident": after["incident"]},
            now=now,
            exercise=exercise,
        )
        await engine_store.request_replan(con, now, f"cancelled {assignment_id}", debounce_s)
        return after


async def set_locked(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    assignment_id: str,
    locked: bool,
    now: datetime,
    *,
    debounce_s: float,
) -> dict[str, Any]:
    """Lock or unlock an assignment for the solver (coordinator)."""
    who.require("incident", Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(Q.get, assignment_id)
        if row is None or not _visible(who, row):
            raise NotFound(f"no assignment {assignment_id!r}")
        if Status(row["status"]) not in ACTIVE:
            raise Conflict(f"the assignment is {row['status']}; only active ones can be (un)locked")
        new = await con.fetchrow(Q.set_locked, assignment_id, locked)
        before, after = to_json(row), to_json({**dict(row), **dict(new)})
        await audit_log.record(
            con,
            ctx,
            AuditEntry("lock" if locked else "unlock", "assignment", assignment_id, before, after),
        )
        if not locked:
            await engine_store.request_replan(con, now, f"unlocked {assignment_id}", debounce_s)
        return after


async def _incident_in_scope(con: asyncpg.Connection, who: Principal, incident_id: str) -> Any:
    who.require("incident", Action.WRITE)
    inc = await con.fetchrow(Q.incident_for_update, incident_id)
    if inc is None or not who.in_scope(inc["path"]):
        raise NotFound(f"no incident {incident_id!r}")
    return inc


async def _person_exists(con: asyncpg.Connection, person_id: str) -> None:
    if await con.fetchrow(Q.person_path, person_id) is None:
        raise ValidationFailed(
            f"unknown person {person_id!r}", errors=[FieldError("/person", "unknown person")]
        )


async def pin(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    incident_id: str,
    person_id: str,
    skill: str | None,
    now: datetime,
    *,
    offer_expiry_s: int,
    mode_key: str,
    exercise: bool,
    debounce_s: float,
) -> dict[str, Any]:
    """Force a person onto an incident: offered at once, locked and pinned for the solver."""
    async with con.transaction():
        inc = await _incident_in_scope(con, who, incident_id)
        await _person_exists(con, person_id)
        lines = {d["skill"] for d in inc["demands"] or []}
        if skill is None:
            raise ValidationFailed(
                "name the skill to pin for", errors=[FieldError("/skill", "required")]
            )
        if skill not in lines:
            raise ValidationFailed(
                f"incident {incident_id!r} has no demand for {skill!r}",
                errors=[FieldError("/skill", "not a demand line of this incident")],
            )
        if inc["status"] not in ("reported", "active"):
            raise Conflict(f"incident {incident_id!r} is {inc['status']}")
        for act in await con.fetch(Q.active_of_person, person_id):
            if act["incident_id"] == incident_id and act["skill"] == skill:
                raise Conflict("this person is already assigned there")
            if act["status"] in ("accepted", "en_route", "on_scene") or act["pinned"]:
                raise Conflict(
                    f"{person_id!r} is committed to {act['incident_id']!r}; cancel that first",
                    extra={"assignment": act["id"]},
                )
            await con.execute(
                "UPDATE assignments SET status = 'withdrawn', withdrawn_at = $2,"
                " version = version + 1 WHERE id = $1",
                act["id"],
                now,
            )
            await engine_store.send(
                con,
                person_id,
                "offer_withdrawn",
                {"assignment": act["id"], "incident": act["incident_id"]},
                now=now,
                exercise=exercise,
            )
        await con.execute(Q.upsert_rule, person_id, incident_id, "pin", skill, now, ctx.actor)

        row = await con.fetchrow(
            Q.insert_pinned,
            person_id,
            incident_id,
            skill,
            mode_key,
            f"pinned by {ctx.actor}",
            now + timedelta(seconds=offer_expiry_s),
            now,
        )
        out = to_json(row)
        await engine_store.send(
            con,
            person_id,
            "offer",
            {
                "assignment": out["id"],
                "incident": incident_id,
                "skill": skill,
                "deadline": out["offer_deadline"],
                "reason": out["reason"],
                "pinned": True,
            },
            now=now,
            exercise=exercise,
        )
        await audit_log.record(con, ctx, AuditEntry("pin", "assignment", out["id"], None, out))
        await engine_store.request_replan(
            con, now, f"pinned {person_id} to {incident_id}", debounce_s
        )
        return out


async def forbid(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    incident_id: str,
    person_id: str,
    now: datetime,
    *,
    exercise: bool,
    debounce_s: float,
) -> dict[str, Any]:
    """Never send this person to this incident; an active assignment there is cancelled."""
    async with con.transaction():
        await _incident_in_scope(con, who, incident_id)
        await _person_exists(con, person_id)
        await con.execute(Q.upsert_rule, person_id, incident_id, "forbid", None, now, ctx.actor)
        for act in await con.fetch(Q.active_of_person, person_id):
            if act["incident_id"] != incident_id:
                continue
            await con.execute(
                "UPDATE assignments SET status = 'cancelled', cancelled_at = $2,"
                " version = version + 1 WHERE id = $1",
                act["id"],
                now,
            )
            await engine_store.send(
                con,
                person_id,
                "assignment_cancelled",
                {"assignment": act["id"], "incident": incident_id},
                now=now,
                exercise=exercise,
            )
        rule = {"person": person_id, "incident": incident_id, "rule": "forbid"}
        await audit_log.record(
            con, ctx, AuditEntry("forbid", "pair_rule", f"{person_id}@{incident_id}", None, rule)
        )
        await engine_store.request_replan(
            con, now, f"forbade {person_id} at {incident_id}", debounce_s
        )
        return rule


async def clear_rule(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    incident_id: str,
    person_id: str,
    now: datetime,
    *,
    debounce_s: float,
) -> None:
    """Remove a pin, forbid, or recorded decline/expiry for a pair."""
    async with con.transaction():
        await _incident_in_scope(con, who, incident_id)
        rule = await con.fetchval(Q.delete_rule, person_id, incident_id)
        if rule is None:
            raise NotFound(f"no rule for {person_id!r} at {incident_id!r}")
        await con.execute(
            "UPDATE assignments SET pinned = false, locked = (status <> 'offered' AND locked)"
            " WHERE person_id = $1 AND incident_id = $2 AND pinned",
            person_id,
            incident_id,
        )
        await audit_log.record(
            con,
            ctx,
            AuditEntry(
                "clear_rule", "pair_rule", f"{person_id}@{incident_id}", {"rule": rule}, None
            ),
        )
        await engine_store.request_replan(
            con, now, f"cleared rule {person_id}@{incident_id}", debounce_s
        )


async def rules(con: asyncpg.Connection, who: Principal, incident_id: str) -> list[dict[str, Any]]:
    """Pins, forbids, declines and expiries recorded for an incident."""
    who.require("incident", Action.READ)
    inc = await con.fetchrow(
        "SELECT j.path FROM incidents i JOIN jurisdictions j ON j.code = i.jurisdiction_code"
        " WHERE i.id = $1",
        incident_id,
    )
    if inc is None or not who.in_scope(inc["path"]):
        raise NotFound(f"no incident {incident_id!r}")
    return [
        {
            "person": r["person_id"],
            "rule": r["rule"],
            "skill": r["skill"],
            "created_at": r["created_at"].isoformat(),
            "created_by": r["created_by"],
        }
        for r in await con.fetch(Q.rules_of_incident, incident_id)
    ]
