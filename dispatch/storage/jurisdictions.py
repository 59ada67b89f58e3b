"""Jurisdiction storage and use cases: scope-checked, audited, in one transaction each."""

from __future__ import annotations

from typing import Any

import asyncpg

from dispatch import jurisdictions as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import AlreadyExists, Conflict, FieldError, NotFound, ValidationFailed
from dispatch.storage import audit_log
from dispatch.storage.queries import queries

Q = queries("jurisdictions")


async def get_row(con: asyncpg.Connection, who: Principal, code: str) -> dict[str, Any]:
    """A jurisdiction in the caller's scope, or :class:`NotFound` (scope is not leaked)."""
    who.require("jurisdiction", Action.READ)
    row = await con.fetchrow(Q.get, code)
    if row is None or not who.in_scope(row["path"]):
        raise NotFound(f"no jurisdiction {code!r}")
    return dict(row)


async def path_of(con: asyncpg.Connection, code: str, *, loc: str = "/jurisdiction") -> str:
    """The path of jurisdiction ``code``; an unknown code is a validation error at ``loc``."""
    path: str | None = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", code)
    if path is None:
        raise ValidationFailed(
            f"unknown jurisdiction {code!r}", errors=[FieldError(loc, "unknown jurisdiction code")]
        )
    return path


async def create(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, body: dom.JurisdictionCreate
) -> dict[str, Any]:
    """Create a node under ``body.parent`` (which must be in scope)."""
    who.require("jurisdiction", Action.WRITE)
    async with con.transaction():
        if body.parent is None:
            if who.scope_path is not None:
                raise ValidationFailed(
                    "a scoped token can only create jurisdictions below its scope",
                    errors=[FieldError("/parent", "required for a scoped token")],
                )
        else:
            who.require_scope(await path_of(con, body.parent, loc="/parent"))
        centre = body.centre
        boundary = body.boundary.model_dump(mode="json") if body.boundary else None
        try:
            row = await con.fetchrow(
                Q.insert,
                body.code,
                body.parent,
                body.kind.value,
                body.name,
                centre.lat if centre else None,
                centre.lon if centre else None,
                boundary,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"jurisdiction {body.code!r} already exists",
                errors=[FieldError("/code", "already exists")],
            ) from None
        out = dom.to_json(dict(row))
        await audit_log.record(con, ctx, AuditEntry("create", "jurisdiction", body.code, None, out))
        return out


async def update(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    code: str,
    patch: dom.JurisdictionPatch,
    if_match: int | None,
) -> dict[str, Any]:
    """Change name, centre or boundary; optimistic concurrency via version/If-Match."""
    who.require("jurisdiction", Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(Q.get_for_update, code)
        if row is None or not who.in_scope(row["path"]):
            raise NotFound(f"no jurisdiction {code!r}")
        check_version(row["version"], body_version=patch.version, if_match=if_match)
        before = dom.to_json(dict(row))
        fields = patch.model_fields_set
        name = patch.name if "name" in fields and patch.name is not None else row["name"]
        lat, lon = row["centre_lat"], row["centre_lon"]
        if "centre" in fields:
            lat = patch.centre.lat if patch.centre else None
            lon = patch.centre.lon if patch.centre else None
        boundary = row["boundary"]
        if "boundary" in fields:
            boundary = patch.boundary.model_dump(mode="json") if patch.boundary else None
        new = await con.fetchrow(Q.update, code, name, lat, lon, boundary)
        after = dom.to_json(dict(new))
        await audit_log.record(con, ctx, AuditEntry("update", "jurisdiction", code, before, after))
        return after


async def delete(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, code: str, if_match: int | None
) -> None:
    """Delete a node that has no children and nothing attached to it."""
    who.require("jurisdiction", Action.WRITE)
    async with con.transaction():
        row = await con.fetchrow(Q.get_for_update, code)
        if row is None or not who.in_scope(row["path"]):
            raise NotFound(f"no jurisdiction {code!r}")
        if who.scope_path == row["path"]:
            raise Conflict("a token cannot delete the root of its own scope")
        check_version(row["version"], body_version=None, if_match=if_match)
        try:
            async with con.transaction():
                await con.execute(Q.delete, code)
        except (asyncpg.ForeignKeyViolationError, asyncpg.RestrictViolationError):
            raise Conflict(
                f"jurisdiction {code!r} still has sub-jurisdictions, people, depots or incidents"
            ) from None
        await audit_log.record(
            con, ctx, AuditEntry("delete", "jurisdiction", code, dom.to_json(dict(row)), None)
        )


async def list_rows(
    con: asyncpg.Connection,
    who: Principal,
    *,
    parent: str | None,
    kind: str | None,
    under: str | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Jurisdictions in scope, ordered by code, ``limit`` at most."""
    who.require("jurisdiction", Action.READ)
    under_path = None
    if under is not None:
        under_path = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", under)
        if under_path is None:
            return []
    rows = await con.fetch(Q.list, who.scope_path, parent, kind, under_path, cursor, limit)
    return [dom.to_json(dict(r)) for r in rows]
