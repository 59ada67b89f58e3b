"""The drill registry: create, read, lifecycle changes (audited), progress, the live relay.

Every function takes a connection on the *live* schema (the app's pool): the registry and the
live outbox live there. A drill's own data is reached only through the ``drill_*`` schema named
in its row, qualified explicitly (see the ``{schema}`` queries in ``drills.sql``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from dispatch import drills as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import NotFound
from dispatch.storage import audit_log
from dispatch.storage.queries import queries

Q = queries("drills")

_SCHEMA = re.compile(r"^drill_[a-z0-9_]{1,50}$")
_TIMES = ("created_at", "updated_at", "started_at", "ended_at", "stop_requested_at")


def _in(schema: str, sql: str) -> str:
    """``sql`` with ``{schema}`` replaced by a validated, quoted drill schema name."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"not a drill schema name: {schema!r}")
    return sql.replace("{schema}", f'"{schema}"')


def to_json(row: Any, *, sim_now: datetime | None = None) -> dict[str, Any]:
    """Public view of a drill (no scenario text, no report body)."""
    sim = sim_now or row["sim_time"]
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "status": row["status"],
        "stopping": row["stop_requested_at"] is not None and row["status"] in ("running", "paused"),
        "options": row["options"],
        "participants": list(row["participants"]),
        "scope": row["scope_code"],
        "created_by": row["created_by"],
        "progress": round(float(row["progress"]), 4),
        "simulated_time": sim.isoformat() if sim is not None else None,
        "relayed_messages": row["relayed"],
        "has_report": row["has_report"],
        "error": row["error"],
        "version": row["version"],
        "links": {
            "self": f"/v1/drills/{row['id']}",
            "report": f"/v1/drills/{row['id']}/report",
            "report_html": f"/v1/drills/{row['id']}/report.html",
        },
    }
    for col in _TIMES:
        value = row[col]
        out[col] = value.isoformat() if value is not None else None
    return out


def _audit(row: Any) -> dict[str, Any]:
    return {"status": row["status"], "version": row["version"]}


async def create(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    *,
    drill_id: str,
    name: str,
    scenario: str,
    source: str,
    options: dict[str, Any],
    scope_code: str | None,
    schema_name: str,
    participants: list[str],
    now: datetime,
) -> asyncpg.Record:
    """Register a drill (status ``created``) with its participants; audited."""
    who.require("drill", Action.WRITE)
    async with con.transaction():
        await con.execute(
            Q.insert,
            drill_id,
            name,
            scenario,
            source,
            options,
            scope_code,
            schema_name,
            ctx.actor,
            now,
        )
        if participants:
            await con.execute(Q.insert_participants, drill_id, sorted(participants))
        row = await con.fetchrow(Q.get, drill_id, False)
        after = {
            **_audit(row),
            "name": name,
            "source": source,
            "options": options,
            "scope": scope_code,
            "participants": sorted(participants),
        }
        await audit_log.record(con, ctx, AuditEntry("create", "drill", drill_id, None, after))
    return row


async def get(
    con: asyncpg.Connection,
    who: Principal,
    drill_id: str,
    *,
    action: Action = Action.READ,
    with_scenario: bool = False,
) -> asyncpg.Record:
    """A drill the caller may see (and, for ``WRITE``, steer); 404 otherwise (not leaked)."""
    who.require("drill", Action.READ)
    row = await con.fetchrow(Q.get, drill_id, with_scenario)
    if row is None or not dom.visible(who, row["scope_path"]):
        raise NotFound(f"no drill {drill_id!r}")
    if action is Action.WRITE:
        who.require("drill", Action.WRITE)
    return row


async def get_any(con: asyncpg.Connection, drill_id: str) -> asyncpg.Record | None:
    """A drill by id, unchecked (the service's own reads)."""
    row: asyncpg.Record | None = await con.fetchrow(Q.get, drill_id, False)
    return row


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    statuses: list[str] | None,
    cursor: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Drills in the caller's scope, newest first."""
    who.require("drill", Action.READ)
    rows: list[asyncpg.Record] = await con.fetch(Q.list, who.scope_path, statuses, cursor, limit)
    return rows


async def transition(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    drill_id: str,
    action: dom.Action,
    now: datetime,
    *,
    owner: str | None = None,
    sim_time: datetime | None = None,
    check: Callable[[asyncpg.Record], None] | None = None,
) -> tuple[dom.DrillStatus, asyncpg.Record]:
    """Apply a trainer action in one audited transaction; returns (status before, new row).

    ``check`` runs on the locked row before the change (the service refuses to start more
    drills than it may run, for example).
    """
    async with con.transaction():
        await get(con, who, drill_id, action=Action.WRITE)
        locked = await con.fetchrow(Q.lock, drill_id)
        before = dom.DrillStatus(locked["status"])
        target = dom.check_transition(
            action, before, stop_requested=locked["stop_requested_at"] is not None
        )
        if check is not None:
            check(locked)
        if action == "start":
            await con.execute(Q.start, drill_id, now, owner, sim_time)
        elif action == "stop":
            if before is dom.DrillStatus.CREATED:
                await con.execute(Q.end_unstarted, drill_id, now)
            else:
                await con.execute(Q.request_stop, drill_id, now)
        else:
            await con.execute(Q.set_status, drill_id, target.value, now, sim_time)
        row = await con.fetchrow(Q.get, drill_id, False)
        await audit_log.record(
            con,
            ctx,
            AuditEntry(action, "drill", drill_id, {**_audit(locked)}, _audit(row)),
        )
    return before, row


async def finish(
    con: asyncpg.Connection,
    drill_id: str,
    status: dom.DrillStatus,
    now: datetime,
    *,
    report: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
    html: str | None = None,
    error: str | None = None,
    sim_time: datetime | None = None,
) -> bool:
    """The end of a run (finished, stopped or failed), audited as the service."""
    async with con.transaction():
        done = await con.fetchval(
            Q.finish, drill_id, status.value, now, report, run, html, error, sim_time
        )
        if done is not None:
            after: dict[str, Any] = {"status": status.value, "error": error}
            if report is not None:
                after["summary"] = report.get("summary")
            await audit_log.record(
                con,
                _system(now),
                AuditEntry(status.value, "drill", drill_id, None, after),
            )
    return done is not None


def _system(now: datetime) -> AuditContext:
    """The drill service as the actor of what it does by itself."""
    return AuditContext("system:drills", "system", at=now)


async def interrupt(con: asyncpg.Connection, drill_id: str, now: datetime, why: str) -> bool:
    """Mark a drill whose instance is gone as ``interrupted``; audited as the service."""
    async with con.transaction():
        done = await con.fetchval(Q.interrupt, drill_id, now, why)
        if done is not None:
            await audit_log.record(
                con,
                _system(now),
                AuditEntry("interrupted", "drill", drill_id, None, {"error": why}),
            )
    return done is not None


async def active(con: asyncpg.Connection) -> list[asyncpg.Record]:
    """Drills marked running or paused (by any instance)."""
    rows: list[asyncpg.Record] = await con.fetch(Q.active)
    return rows


async def publish(
    con: asyncpg.Connection,
    readings: Sequence[tuple[str, float, datetime | None]],
    now: datetime,
) -> None:
    """Store each running drill's progress and simulated clock reading."""
    if not readings:
        return
    await con.execute(
        Q.publish,
        [r[0] for r in readings],
        [r[1] for r in readings],
        [r[2] for r in readings],
        now,
    )


async def watch(con: asyncpg.Connection, ids: list[str]) -> list[asyncpg.Record]:
    """Status, stop request and pokes of these drills."""
    rows: list[asyncpg.Record] = await con.fetch(Q.watch, ids)
    return rows


async def poke(con: asyncpg.Connection, drill_id: str) -> None:
    """Tell the owner (through the registry) that a participant answered."""
    await con.execute(Q.poke, drill_id)


async def report(con: asyncpg.Connection, drill_id: str) -> asyncpg.Record:
    """Status, report, run figures and HTML of a drill (visibility checked by the caller)."""
    row: asyncpg.Record = await con.fetchrow(Q.report, drill_id)
    return row


async def participating(
    con: asyncpg.Connection, person_id: str, statuses: list[str]
) -> list[asyncpg.Record]:
    """Drills a person takes part in, in these statuses."""
    rows: list[asyncpg.Record] = await con.fetch(Q.participating, person_id, statuses)
    return rows


async def is_participant(con: asyncpg.Connection, drill_id: str, person_id: str) -> bool:
    """Whether ``person_id`` takes part in the drill."""
    return bool(await con.fetchval(Q.is_participant, drill_id, person_id))


async def live_people(con: asyncpg.Connection, ids: list[str]) -> dict[str, str]:
    """Active live people among ``ids`` → their jurisdiction paths."""
    return {r["id"]: r["path"] for r in await con.fetch(Q.live_people, ids)}


async def relay(
    con: asyncpg.Connection,
    drill_id: str,
    schema: str,
    participants: list[str],
    now: datetime,
    decorate: Callable[[asyncpg.Record], dict[str, Any]],
) -> int:
    """Copy the participants' new drill messages into the live outbox, exercise-marked.

    One transaction on the live schema: the copies and the new relay position commit together,
    so each drill message reaches its person exactly once. ``decorate`` turns a drill outbox row
    into the live payload. The drill loop is the only writer of the drill's outbox and relays
    between its steps, so no drill message below the new position can still be uncommitted.
    """
    async with con.transaction():
        position: int = await con.fetchval(Q.relay_position, drill_id)
        top: int = await con.fetchval(_in(schema, Q.drill_outbox_max))
        if top <= position:
            return 0
        rows = await con.fetch(_in(schema, Q.drill_outbox), position, participants)
        rows = [r for r in rows if r["id"] <= top]
        if rows:
            await con.execute(
                Q.relay_insert,
                [r["person_id"] for r in rows],
                [r["kind"] for r in rows],
                [decorate(r) for r in rows],
                now,
            )
        await con.execute(Q.relay_mark, drill_id, top, len(rows))
    return len(rows)


async def send_live(
    con: asyncpg.Connection,
    kind: str,
    messages: list[tuple[str, dict[str, Any]]],
    now: datetime,
) -> None:
    """Exercise-marked messages straight to live people (e.g. "the drill has ended")."""
    if not messages:
        return
    await con.execute(
        Q.relay_insert,
        [m[0] for m in messages],
        [kind] * len(messages),
        [m[1] for m in messages],
        now,
    )


async def participant_assignments(
    con: asyncpg.Connection, schema: str, people: list[str]
) -> list[asyncpg.Record]:
    """The participants' assignments inside a drill's schema (before it is dropped)."""
    rows: list[asyncpg.Record] = await con.fetch(_in(schema, Q.drill_assignments), people)
    return rows
