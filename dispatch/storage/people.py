"""People storage and use cases: scope-checked, audited, one transaction each.

Visibility: admins, coordinators and observers see people whose jurisdiction lies in their
scope; a volunteer token sees only its own person. Anything else answers :class:`NotFound`, so
the existence of a person outside scope is not leaked. Contacts and home location are shown only
when :meth:`Principal.sees_personal_data` allows it.

``DELETE`` deactivates (``active=false``, version bumped, audited) so history and assignments
keep their person; ``purge=True`` (admins only) removes the row for good, which fails with
:class:`Conflict` while something (a token, later an assignment) still refers to it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from dispatch import roster as dom
from dispatch.access import Action, Principal, Role
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import AlreadyExists, Conflict, FieldError, Forbidden, NotFound
from dispatch.storage import audit_log
from dispatch.storage.jurisdictions import path_of
from dispatch.storage.queries import queries

Q = queries("people")


def visible(who: Principal, row: dict[str, Any]) -> bool:
    """Whether ``who`` may know that the person in ``row`` (with its ``path``) exists."""
    if who.role is Role.VOLUNTEER:
        return bool(row["id"] == who.person_id)
    return who.in_scope(row["path"])


def present(who: Principal, row: dict[str, Any]) -> dict[str, Any]:
    """The person as ``who`` may see it."""
    return dom.to_json(row, show_pii=who.sees_personal_data(row["path"], row["id"]))


def _full(row: Any, path: str) -> dict[str, Any]:
    """Full (PII included) view of a row, for audit snapshots."""
    return dom.to_json(dict(row) | {"path": path}, show_pii=True)


async def get_row(con: asyncpg.Connection, who: Principal, person_id: str) -> dict[str, Any]:
    """A person visible to ``who`` (row plus its jurisdiction ``path``), else :class:`NotFound`."""
    who.require("person", Action.READ)
    row = await con.fetchrow(Q.get, person_id)
    if row is None or not visible(who, dict(row)):
        raise NotFound(f"no person {person_id!r}")
    return dict(row)


def _values(body: dom.PersonCreate | dom.Person) -> tuple[Any, ...]:
    """Column values after ``id`` in the order of the insert/update queries."""
    return (
        body.kind.value,
        body.name,
        body.jurisdiction,
        body.home.lat,
        body.home.lon,
        body.contacts.model_dump(mode="json"),
        [s.model_dump(mode="json") for s in body.skills],
        [c.model_dump(mode="json") for c in body.certifications],
        body.availability.model_dump(mode="json"),
        body.max_hours_per_24h,
        body.min_rest_hours,
        body.reserve,
        body.active,
    )


async def create(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, body: dom.PersonCreate
) -> dict[str, Any]:
    """Create a person in a jurisdiction inside the caller's scope (else :class:`Forbidden`)."""
    who.require("person", Action.WRITE)
    async with con.transaction():
        path = await path_of(con, body.jurisdiction, loc="/jurisdiction")
        who.require_scope(path)
        pid = body.id or dom.new_id()
        try:
            async with con.transaction():
                row = await con.fetchrow(Q.insert, pid, *_values(body))
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"person {pid!r} already exists", errors=[FieldError("/id", "already exists")]
            ) from None
        after = _full(row, path)
        await audit_log.record(con, ctx, AuditEntry("create", "person", pid, None, after))
        return present(who, dict(row) | {"path": path})


async def update(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    person_id: str,
    patch: dom.PersonPatch,
    if_match: int | None,
) -> dict[str, Any]:
    """Replace the given fields; moving a person needs scope over both jurisdictions."""
    who.require("person", Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(Q.get_for_update, person_id)
        if row is None or not visible(who, dict(row)):
            raise NotFound(f"no person {person_id!r}")
        check_version(row["version"], body_version=patch.version, if_match=if_match)
        current = dom.person_from_row(dict(row))
        changes = {f: getattr(patch, f) for f in patch.model_fields_set if f != "version"}
        merged = current.model_copy(update=changes)
        path = row["path"]
        if merged.jurisdiction != current.jurisdiction:
            path = await path_of(con, merged.jurisdiction, loc="/jurisdiction")
            who.require_scope(path)
        new = await con.fetchrow(Q.update, person_id, *_values(merged))
        before, after = _full(row, row["path"]), _full(new, path)
        await audit_log.record(con, ctx, AuditEntry("update", "person", person_id, before, after))
        return present(who, dict(new) | {"path": path})


async def delete(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    person_id: str,
    if_match: int | None,
    *,
    purge: bool = False,
) -> None:
    """Deactivate a person (idempotent), or with ``purge`` remove the row (admins only)."""
    who.require("person", Action.WRITE)
    if purge and who.role is not Role.ADMIN:
        raise Forbidden("only an admin may purge a person")
    async with con.transaction():
        row = await con.fetchrow(Q.get_for_update, person_id)
        if row is None or not visible(who, dict(row)):
            raise NotFound(f"no person {person_id!r}")
        check_version(row["version"], body_version=None, if_match=if_match)
        before = _full(row, row["path"])
        if purge:
            try:
                async with con.transaction():
                    await con.execute(Q.delete, person_id)
            except asyncpg.ForeignKeyViolationError:
                raise Conflict(
                    f"person {person_id!r} is still referenced (tokens or assignments); "
                    "deactivate instead"
                ) from None
            await audit_log.record(con, ctx, AuditEntry("purge", "person", person_id, before, None))
            return
        if not row["active"]:
            return
        new = await con.fetchrow(Q.deactivate, person_id)
        await audit_log.record(
            con,
            ctx,
            AuditEntry("deactivate", "person", person_id, before, _full(new, row["path"])),
        )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    jurisdiction: str | None = None,
    kind: str | None = None,
    skill: str | None = None,
    min_level: int | None = None,
    on_date: date,
    active: bool | None = None,
    reserve: bool | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> list[dict[str, Any]]:
    """People visible to ``who`` matching the filters, ordered by id, ``limit`` at most.

    ``jurisdiction`` selects that subtree; ``skill`` an effective skill on ``on_date`` (see
    :func:`dispatch.roster.effective_skills`), at ``min_level`` or above when given.
    """
    who.require("person", Action.READ)
    under = None
    if jurisdiction is not None:
        under = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", jurisdiction)
        if under is None:
            return []
    volunteer = who.role is Role.VOLUNTEER
    if volunteer and who.person_id is None:
        return []
    rows = await con.fetch(
        Q.list,
        None if volunteer else who.scope_path,
        under,
        kind,
        skill,
        min_level,
        on_date,
        active,
        reserve,
        _like(q) if q else None,
        who.person_id if volunteer else None,
        cursor,
        limit,
    )
    return [present(who, dict(r)) for r in rows]
