"""Mode storage and use cases: own settings, effective modes, history and policies.

Setting a mode writes ``jurisdiction_modes``, ``mode_history`` and the audit log in one
transaction, serialised per node by a row lock. The engine calls :func:`effective_modes` and
:func:`policy_for_jurisdiction`, and gets the nodes whose effective mode moved from
:func:`set_mode` (:attr:`ModeSetResult.transitions`) to start demobilisation on stand-down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from dispatch import modes as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import Forbidden, NotFound
from dispatch.storage import audit_log
from dispatch.storage.queries import queries

Q = queries("modes")


@dataclass(frozen=True, slots=True)
class ModeSetResult:
    """What :func:`set_mode` did: the public answer and the effective-mode changes it caused."""

    out: dict[str, Any]
    transitions: list[dom.ModeTransition] = field(default_factory=list)


def _mode_of(mode: str | None, level: str | None) -> dom.Mode | None:
    return None if mode is None else dom.Mode.from_columns(mode, level)


def own_to_json(row: dict[str, Any] | asyncpg.Record | None) -> dict[str, Any] | None:
    """Public representation of a node's own setting (``None`` when it has none)."""
    if row is None:
        return None
    return {
        "mode": row["mode"],
        "level": row["level"],
        "reason": row["reason"],
        "set_by": row["set_by"],
        "set_at": row["set_at"].isoformat(),
        "version": row["version"],
    }


def history_to_json(row: asyncpg.Record) -> dict[str, Any]:
    """Public representation of one ``mode_history`` row."""
    before = _mode_of(row["from_mode"], row["from_level"])
    return {
        "id": row["id"],
        "from": before.to_json() if before else None,
        "to": dom.Mode.from_columns(row["to_mode"], row["to_level"]).to_json(),
        "reason": row["reason"],
        "actor": row["actor"],
        "actor_role": row["actor_role"],
        "at": row["at"].isoformat(),
        "request_id": row["request_id"],
    }


def _policy_of(row: asyncpg.Record) -> dom.ModePolicy:
    data = {name: row[name] for name in dom.ModePolicy.model_fields}
    return dom.ModePolicy.model_validate(data, strict=False)


def policy_to_json(row: asyncpg.Record) -> dict[str, Any]:
    """Public representation of a ``mode_policies`` row."""
    return {
        "key": row["key"],
        **dom.Mode.from_key(row["key"]).to_json(),
        **_policy_of(row).to_json(),
        "version": row["version"],
        "updated_at": row["updated_at"].isoformat(),
    }


async def load_policies(con: asyncpg.Connection) -> dict[str, dom.ModePolicy]:
    """The policy table as stored, by key."""
    return {r["key"]: _policy_of(r) for r in await con.fetch(Q.policies)}


async def _own_modes(con: asyncpg.Connection, codes: Iterable[str]) -> dict[str, dom.Mode]:
    rows = await con.fetch(Q.own_of, sorted(set(codes)))
    return {r["code"]: dom.Mode.from_columns(r["mode"], r["level"]) for r in rows}


async def effective_modes(
    con: asyncpg.Connection, codes: Iterable[str]
) -> dict[str, dom.EffectiveMode]:
    """Effective mode and its source for each known code (unknown codes are left out).

    Each value unpacks as ``(mode, source_code)``.
    """
    rows = await con.fetch(Q.paths_of, sorted(set(codes)))
    paths = {r["code"]: r["path"] for r in rows}
    on_paths = {c for path in paths.values() for c in dom.path_codes(path)}
    return dom.effective_by_path(paths, await _own_modes(con, on_paths))


async def _effective_one(con: asyncpg.Connection, code: str) -> dom.EffectiveMode:
    found = await effective_modes(con, [code])
    if code not in found:
        raise NotFound(f"no jurisdiction {code!r}")
    return found[code]


async def _policy_row(con: asyncpg.Connection, key: str) -> asyncpg.Record:
    row = await con.fetchrow(Q.policy, key)
    if row is None:  # the migration seeds every key; only a hand-edited database lacks one
        raise NotFound(f"no mode policy {key!r}")
    return row


async def policy_for_jurisdiction(con: asyncpg.Connection, code: str) -> dom.ModePolicy:
    """The policy in force at ``code`` (from its effective mode); :class:`NotFound` if unknown."""
    eff = await _effective_one(con, code)
    row = await con.fetchrow(Q.policy, eff.mode.key)
    return _policy_of(row) if row is not None else dom.policy_for(eff.mode, {})


async def _scoped_path(con: asyncpg.Connection, who: Principal, code: str) -> str:
    path: str | None = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", code)
    if path is None or not who.in_scope(path):
        raise NotFound(f"no jurisdiction {code!r}")
    return path


async def _state(con: asyncpg.Connection, code: str, own: Any) -> dict[str, Any]:
    eff = await _effective_one(con, code)
    return {
        "code": code,
        "own": own_to_json(own),
        "effective": eff.to_json(),
        "policy": policy_to_json(await _policy_row(con, eff.mode.key)),
    }


async def get_mode(
    con: asyncpg.Connection, who: Principal, code: str, *, history_limit: int
) -> dict[str, Any]:
    """Own setting, effective mode with its source, the policy in force and recent history."""
    who.require("mode", Action.READ)
    async with con.transaction(isolation="repeatable_read", readonly=True):
        await _scoped_path(con, who, code)
        out = await _state(con, code, await con.fetchrow(Q.get_own, code))
        rows = await con.fetch(Q.history, code, history_limit) if history_limit else []
    out["history"] = [history_to_json(r) for r in rows]
    return out


async def set_mode(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    code: str,
    change: dom.ModeChange,
    if_match: int | None,
) -> ModeSetResult:
    """Set the own mode of ``code``: own row, history and audit in one transaction.

    The version of a node without an own setting is 0. Returns the new state and the nodes of
    the subtree whose effective mode changed.
    """
    who.require("mode", Action.WRITE)
    async with con.transaction():
        node = await con.fetchrow(Q.lock_jurisdiction, code)
        if node is None or not who.in_scope(node["path"]):
            raise NotFound(f"no jurisdiction {code!r}")
        own = await con.fetchrow(Q.get_own_for_update, code)
        check_version(own["version"] if own else 0, body_version=change.version, if_match=if_match)
        path: str = node["path"]
        ancestors = dom.path_codes(path)[:-1]
        subtree = {r["code"]: r["path"] for r in await con.fetch(Q.subtree_paths, path)}
        own_before = {
            r["code"]: dom.Mode.from_columns(r["mode"], r["level"])
            for r in await con.fetch(Q.own_in_subtree, path, ancestors)
        }
        own_after = {**own_before, code: change.target}
        before_eff = {c: e.mode for c, e in dom.effective_by_path(subtree, own_before).items()}
        after_eff = {c: e.mode for c, e in dom.effective_by_path(subtree, own_after).items()}

        target = change.target
        level = target.level.value if target.level else None
        new = await con.fetchrow(
            Q.upsert_own, code, target.mode.value, level, change.reason, ctx.actor, ctx.at
        )
        await con.execute(
            Q.insert_history,
            code,
            own["mode"] if own else None,
            own["level"] if own else None,
            new["mode"],
            new["level"],
            change.reason,
            ctx.actor,
            ctx.actor_role,
            ctx.request_id,
            ctx.at,
        )
        before_json = own_to_json(own)
        after_json = own_to_json(new)
        await audit_log.record(
            con,
            ctx,
            AuditEntry(
                "set_mode",
                "jurisdiction_mode",
                code,
                {"code": code, **before_json} if before_json else None,
                {"code": code, **(after_json or {})},
            ),
        )
        out = await _state(con, code, new)
    return ModeSetResult(out, dom.mode_transition(before_eff, after_eff))


async def list_modes(
    con: asyncpg.Connection,
    who: Principal,
    *,
    mode: str | None,
    level: str | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Nodes in scope with an own setting (optionally only ``mode``/``level``), by code."""
    who.require("mode", Action.READ)
    rows = await con.fetch(Q.list_own, who.scope_path, mode, level, cursor, limit)
    return [{"code": r["code"], "path": r["path"], **(own_to_json(r) or {})} for r in rows]


async def list_policies(con: asyncpg.Connection, who: Principal) -> list[dict[str, Any]]:
    """Every mode policy, from routine to I."""
    who.require("mode_policy", Action.READ)
    rows = {r["key"]: r for r in await con.fetch(Q.policies)}
    return [policy_to_json(rows[k]) for k in dom.MODE_KEYS if k in rows]


async def get_policy(con: asyncpg.Connection, who: Principal, key: str) -> dict[str, Any]:
    """One mode policy by key (``routine``, ``IV`` … ``I``)."""
    who.require("mode_policy", Action.READ)
    if key not in dom.MODE_KEYS:
        raise NotFound(f"no mode policy {key!r}")
    return policy_to_json(await _policy_row(con, key))


async def update_policy(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    key: str,
    body: dom.ModePolicyPut,
    if_match: int | None,
) -> dict[str, Any]:
    """Replace one policy (unscoped admins only); versioned and audited."""
    who.require("mode_policy", Action.WRITE)
    if who.scope_path is not None:
        raise Forbidden("only an unscoped admin may change mode policies")
    if key not in dom.MODE_KEYS:
        raise NotFound(f"no mode policy {key!r}")
    policy = body.policy()
    async with con.transaction():
        row = await con.fetchrow(Q.policy_for_update, key)
        if row is None:
            raise NotFound(f"no mode policy {key!r}")
        check_version(row["version"], body_version=body.version, if_match=if_match)
        new = await con.fetchrow(
            Q.update_policy,
            key,
            [p.value for p in policy.callable_pools],
            policy.mutual_aid.value,
            policy.offer_expiry_s,
            policy.replan_every_s,
            policy.max_travel_minutes,
            dict(policy.priority_weights),
            policy.reassign_penalty_minutes,
            policy.suspend_routine_tasks,
        )
        before, after = policy_to_json(row), policy_to_json(new)
        await audit_log.record(con, ctx, AuditEntry("update", "mode_policy", key, before, after))
    return after
