"""Token storage: create, look up by hash, revoke."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dispatch.access import Action, Principal, Role
from dispatch.audit import AuditContext, AuditEntry
from dispatch.errors import FieldError, NotFound, ValidationFailed
from dispatch.storage import audit_log
from dispatch.storage.jurisdictions import path_of
from dispatch.storage.queries import queries
from dispatch.tokens import TokenCreate, hash_secret, new_secret

Q = queries("tokens")


def to_json(row: Any) -> dict[str, Any]:
    """Public view of a token (never the secret or its hash)."""
    return {
        "id": str(row["id"]),
        "role": row["role"],
        "jurisdiction": row["jurisdiction_code"],
        "person": row["person_id"],
        "label": row["label"],
        "created_at": row["created_at"].isoformat(),
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
    }


async def authenticate(con: asyncpg.Connection, secret: str) -> Principal | None:
    """The principal behind a bearer token, or ``None`` if unknown or revoked."""
    row = await con.fetchrow(Q.authenticate, hash_secret(secret))
    return None if row is None else principal_of(row)


def principal_of(row: Any, prefix: str = "") -> Principal:
    """The principal of a token row (id, role, jurisdiction_code, person_id, scope_path; each
    named with ``prefix`` in front)."""
    return Principal(
        token_id=str(row[f"{prefix}id"]),
        role=Role(row[f"{prefix}role"]),
        scope_code=row[f"{prefix}jurisdiction_code"],
        scope_path=row[f"{prefix}scope_path"],
        person_id=row[f"{prefix}person_id"],
    )


async def create(
    con: asyncpg.Connection, who: Principal | None, ctx: AuditContext, body: TokenCreate
) -> tuple[str, dict[str, Any]]:
    """Create a token; returns ``(secret, public view)``. ``who=None`` is the local CLI."""
    if who is not None:
        who.require("token", Action.WRITE)
    async with con.transaction():
        if body.jurisdiction is not None:
            path = await path_of(con, body.jurisdiction, loc="/jurisdiction")
            if who is not None:
                who.require_scope(path)
        elif who is not None and who.scope_path is not None and body.role is not Role.VOLUNTEER:
            raise ValidationFailed(
                "a scoped admin can only create scoped tokens",
                errors=[FieldError("/jurisdiction", "required")],
            )
        if body.person is not None:
            ppath = await con.fetchval(
                "SELECT j.path FROM people p JOIN jurisdictions j ON j.code = p.jurisdiction_code"
                " WHERE p.id = $1",
                body.person,
            )
            if ppath is None:
                raise ValidationFailed(
                    f"unknown person {body.person!r}", errors=[FieldError("/person", "unknown")]
                )
            if who is not None:
                who.require_scope(ppath)
        secret = new_secret()
        row = await con.fetchrow(
            Q.insert,
            uuid.uuid4(),
            hash_secret(secret),
            body.role.value,
            body.jurisdiction,
            body.person,
            body.label,
        )
        out = to_json(row)
        await audit_log.record(con, ctx, AuditEntry("create", "token", out["id"], None, out))
        return secret, out


async def revoke(
    con: asyncpg.Connection, who: Principal | None, ctx: AuditContext, token_id: str
) -> dict[str, Any]:
    """Revoke a token (idempotent for an already revoked one). ``who=None`` is the local CLI."""
    if who is not None:
        who.require("token", Action.WRITE)
    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        raise NotFound(f"no token {token_id!r}") from None
    async with con.transaction():
        before = await con.fetchrow(Q.get, tid)
        if before is None:
            raise NotFound(f"no token {token_id!r}")
        if who is not None and who.scope_path is not None:
            # A volunteer token has no jurisdiction of its own: it lives where its person does
            # (as in ``list_tokens``), so a scoped admin can revoke what it can list.
            path = await con.fetchval(
                "SELECT path FROM jurisdictions WHERE code = COALESCE($1,"
                " (SELECT jurisdiction_code FROM people WHERE id = $2))",
                before["jurisdiction_code"],
                before["person_id"],
            )
            if path is None or not who.in_scope(path):
                raise NotFound(f"no token {token_id!r}")
        row = await con.fetchrow(Q.revoke, tid)
        if row is None:
            return to_json(before)
        out = to_json(row)
        await audit_log.record(
            con, ctx, AuditEntry("revoke", "token", out["id"], to_json(before), out)
        )
        return out


async def list_tokens(
    con: asyncpg.Connection, who: Principal, cursor: str | None, limit: int
) -> list[dict[str, Any]]:
    """Tokens in the caller's scope (a scoped admin sees only its subtree's tokens)."""
    who.require("token", Action.READ)
    after = uuid.UUID(cursor) if cursor else None
    rows = await con.fetch(Q.list, after, limit, who.scope_path)
    return [to_json(r) for r in rows]


async def has_admin(con: asyncpg.Connection) -> bool:
    """Whether any unrevoked admin token exists (first-start hint)."""
    n: int = await con.fetchval(Q.count_admins)
    return n > 0
