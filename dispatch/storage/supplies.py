"""Items, depots and stock: scope-checked, audited use cases, one transaction each.

Every change of a stock line writes a row to the ``stock_movements`` ledger and an audit entry
in the same transaction. The stock line is locked (``FOR UPDATE``) before it is checked, so
concurrent adjustments serialise per line; the CHECK constraints on ``stock`` are the final guard
and a violation is answered as :class:`Conflict`.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dispatch import supplies as dom
from dispatch.access import Action, Principal
from dispatch.audit import AuditContext, AuditEntry
from dispatch.concurrency import check_version
from dispatch.errors import AlreadyExists, Conflict, FieldError, NotFound, ValidationFailed
from dispatch.storage import audit_log
from dispatch.storage.jurisdictions import path_of
from dispatch.storage.queries import queries

Q = queries("supplies")


# ---- items -------------------------------------------------------------------------------------


async def get_item(con: asyncpg.Connection, who: Principal, code: str) -> dict[str, Any]:
    """One catalogue item, or :class:`NotFound`."""
    who.require("item", Action.READ)
    row = await con.fetchrow(Q.item_get, code)
    if row is None:
        raise NotFound(f"no item {code!r}")
    return dom.item_to_json(dict(row))


async def create_item(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, body: dom.ItemCreate
) -> dict[str, Any]:
    """Add an item to the catalogue (admins only)."""
    who.require("item", Action.WRITE)
    async with con.transaction():
        try:
            row = await con.fetchrow(Q.item_insert, body.code, body.name, body.unit)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"item {body.code!r} already exists", errors=[FieldError("/code", "already exists")]
            ) from None
        out = dom.item_to_json(dict(row))
        await audit_log.record(con, ctx, AuditEntry("create", "item", body.code, None, out))
        return out


async def list_items(
    con: asyncpg.Connection, who: Principal, *, cursor: str | None, limit: int
) -> list[dict[str, Any]]:
    """Catalogue items ordered by code."""
    who.require("item", Action.READ)
    return [dom.item_to_json(dict(r)) for r in await con.fetch(Q.item_list, cursor, limit)]


async def require_items(
    con: asyncpg.Connection, codes: list[str], loc: str, *, keyed: bool = True
) -> None:
    """:class:`ValidationFailed` for every code not in the catalogue, located at ``{loc}/{code}``
    (codes that are keys of a map) or at ``loc`` itself (``keyed=False``)."""
    if not codes:
        return
    known = {r["code"] for r in await con.fetch(Q.items_known, codes)}
    missing = [c for c in codes if c not in known]
    if missing:
        raise ValidationFailed(
            f"unknown item(s): {', '.join(missing)}",
            errors=[
                FieldError(f"{loc}/{c}" if keyed else loc, "unknown item code", "unknown_item")
                for c in missing
            ],
        )


# ---- depots ------------------------------------------------------------------------------------


async def _depot_json(con: asyncpg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    stock = [dict(s) for s in await con.fetch(Q.stock_of, [row["id"]])]
    return dom.depot_to_json(row, stock)


async def _depot_in_scope(
    con: asyncpg.Connection, who: Principal, depot_id: str, *, lock: str = ""
) -> dict[str, Any]:
    query = {"": Q.depot_get, "update": Q.depot_get_for_update, "delete": Q.depot_get_for_delete}
    row = await con.fetchrow(query[lock], depot_id)
    if row is None or not who.in_scope(row["path"]):
        raise NotFound(f"no depot {depot_id!r}")
    return dict(row)


async def get_depot(con: asyncpg.Connection, who: Principal, depot_id: str) -> dict[str, Any]:
    """A depot in the caller's scope with its stock, or :class:`NotFound`."""
    who.require("depot", Action.READ)
    return await _depot_json(con, await _depot_in_scope(con, who, depot_id))


async def _move(
    con: asyncpg.Connection,
    ctx: AuditContext,
    line: dict[str, Any],
    kind: str,
    delta: int,
    reason: str,
) -> None:
    await con.execute(
        Q.movement_insert,
        line["depot_id"],
        line["item"],
        kind,
        delta,
        line["quantity"],
        line["reserved"],
        reason,
        ctx.actor,
        ctx.request_id,
        ctx.at,
    )


async def create_depot(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, body: dom.DepotCreate
) -> dict[str, Any]:
    """Create a depot in a jurisdiction inside the caller's scope, with opening stock."""
    who.require("depot", Action.WRITE)
    depot_id = body.id or f"dep-{uuid.uuid4().hex[:12]}"
    async with con.transaction():
        who.require_scope(await path_of(con, body.jurisdiction))
        await require_items(con, list(body.stock), "/stock")
        try:
            row = await con.fetchrow(
                Q.depot_insert,
                depot_id,
                body.name,
                body.jurisdiction,
                body.location.lat,
                body.location.lon,
                body.active,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"depot {depot_id!r} already exists", errors=[FieldError("/id", "already exists")]
            ) from None
        for item, quantity in sorted(body.stock.items()):
            line = dict(await con.fetchrow(Q.stock_set, depot_id, item, quantity))
            await _move(con, ctx, line, "initial", quantity, "opening stock")
        out = await _depot_json(con, dict(row))
        await audit_log.record(con, ctx, AuditEntry("create", "depot", depot_id, None, out))
        return out


async def update_depot(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    depot_id: str,
    patch: dom.DepotPatch,
    if_match: int | None,
) -> dict[str, Any]:
    """Rename, move (within scope), relocate or (de)activate a depot."""
    who.require("depot", Action.WRITE)
    async with con.transaction():
        row = await _depot_in_scope(con, who, depot_id, lock="update")
        check_version(row["version"], body_version=patch.version, if_match=if_match)
        before = await _depot_json(con, row)
        jurisdiction = row["jurisdiction_code"]
        if patch.jurisdiction is not None and patch.jurisdiction != jurisdiction:
            who.require_scope(await path_of(con, patch.jurisdiction))
            jurisdiction = patch.jurisdiction
        loc = patch.location
        new = await con.fetchrow(
            Q.depot_update,
            depot_id,
            patch.name if patch.name is not None else row["name"],
            jurisdiction,
            loc.lat if loc else row["lat"],
            loc.lon if loc else row["lon"],
            patch.active if patch.active is not None else row["active"],
        )
        after = await _depot_json(con, dict(new))
        await audit_log.record(con, ctx, AuditEntry("update", "depot", depot_id, before, after))
        return after


async def delete_depot(
    con: asyncpg.Connection, who: Principal, ctx: AuditContext, depot_id: str, if_match: int | None
) -> None:
    """Delete a depot that holds nothing (set its stock to zero first, or deactivate it)."""
    who.require("depot", Action.WRITE)
    async with con.transaction():
        row = await _depot_in_scope(con, who, depot_id, lock="delete")
        check_version(row["version"], body_version=None, if_match=if_match)
        held = await con.fetch(Q.stock_held, depot_id)
        if held:
            raise Conflict(
                f"depot {depot_id!r} still holds stock; set it to zero or deactivate the depot",
                extra={"items": [r["item"] for r in held]},
            )
        before = await _depot_json(con, row)
        try:
            async with con.transaction():
                await con.execute(Q.depot_delete, depot_id)
        except asyncpg.ForeignKeyViolationError:
            raise Conflict(f"depot {depot_id!r} has supply allocations on record") from None
        await audit_log.record(con, ctx, AuditEntry("delete", "depot", depot_id, before, None))


async def list_depots(
    con: asyncpg.Connection,
    who: Principal,
    *,
    jurisdiction: str | None,
    item: str | None,
    cursor: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Depots in scope (and under ``jurisdiction``, holding ``item``), ordered by id."""
    who.require("depot", Action.READ)
    under = None
    if jurisdiction is not None:
        under = await con.fetchval("SELECT path FROM jurisdictions WHERE code = $1", jurisdiction)
        if under is None:
            return []
    rows = [
        dict(r) for r in await con.fetch(Q.depot_list, who.scope_path, under, item, cursor, limit)
    ]
    by_depot: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
    for s in await con.fetch(Q.stock_of, list(by_depot)):
        by_depot[s["depot_id"]].append(dict(s))
    return [dom.depot_to_json(r, by_depot[r["id"]]) for r in rows]


# ---- stock -------------------------------------------------------------------------------------


async def _item_exists(con: asyncpg.Connection, item: str) -> bool:
    return await con.fetchrow(Q.item_get, item) is not None


async def get_stock(
    con: asyncpg.Connection, who: Principal, depot_id: str, item: str
) -> dict[str, Any]:
    """One stock line (an item the depot never held reads as zero, version 0)."""
    who.require("depot", Action.READ)
    await _depot_in_scope(con, who, depot_id)
    if not await _item_exists(con, item):
        raise NotFound(f"no item {item!r}")
    row = await con.fetchrow(Q.stock_get, depot_id, item)
    if row is None:
        return dom.stock_to_json(
            {"depot_id": depot_id, "item": item, "quantity": 0, "reserved": 0, "version": 0}
        )
    return dom.stock_to_json(dict(row))


async def set_stock(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    depot_id: str,
    item: str,
    body: dom.StockSet,
    if_match: int | None,
) -> dict[str, Any]:
    """Set the counted quantity of one line; the line's version guards against lost updates
    (a line that does not exist yet has version 0)."""
    who.require("depot", Action.WRITE)
    async with con.transaction():
        await _depot_in_scope(con, who, depot_id, lock="update")
        if not await _item_exists(con, item):
            raise NotFound(f"no item {item!r}")
        current = await con.fetchrow(Q.stock_get_for_update, depot_id, item)
        before = dom.stock_to_json(dict(current)) if current is not None else None
        quantity, reserved = (current["quantity"], current["reserved"]) if current else (0, 0)
        check_version(
            current["version"] if current else 0, body_version=body.version, if_match=if_match
        )
        dom.check_quantity(item, body.quantity, reserved)
        try:
            async with con.transaction():
                line = dict(await con.fetchrow(Q.stock_set, depot_id, item, body.quantity))
        except asyncpg.CheckViolationError:
            raise Conflict(
                f"stock of {item!r} cannot be {body.quantity} (negative or below reserved)",
                extra={"item": item, "requested_quantity": body.quantity},
            ) from None
        await _move(con, ctx, line, "set", body.quantity - quantity, body.reason)
        after = dom.stock_to_json(line)
        await audit_log.record(
            con,
            ctx,
            AuditEntry(
                "stock.set", "stock", f"{depot_id}/{item}", before, after | _why(body.reason)
            ),
        )
        return after


def _why(reason: str) -> dict[str, Any]:
    return {"reason": reason} if reason else {}


async def adjust_stock(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    depot_id: str,
    body: dom.StockAdjust,
) -> dict[str, Any]:
    """Add ``delta`` to one line; a result below zero or below reserved is a :class:`Conflict`
    and changes nothing."""
    who.require("depot", Action.WRITE)
    async with con.transaction():
        await _depot_in_scope(con, who, depot_id, lock="update")
        await require_items(con, [body.item], "/item", keyed=False)
        current = await con.fetchrow(Q.stock_get_for_update, depot_id, body.item)
        before = dom.stock_to_json(dict(current)) if current is not None else None
        quantity, reserved = (current["quantity"], current["reserved"]) if current else (0, 0)
        dom.adjusted(body.item, quantity, reserved, body.delta)
        try:
            async with con.transaction():
                query = Q.stock_add if current is not None else Q.stock_insert
                line = dict(await con.fetchrow(query, depot_id, body.item, body.delta))
        except asyncpg.CheckViolationError:
            raise Conflict(
                f"the adjustment would leave {body.item!r} negative or below reserved",
                extra={"item": body.item, "delta": body.delta},
            ) from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"no depot {depot_id!r}") from None
        await _move(con, ctx, line, "adjust", body.delta, body.reason)
        after = dom.stock_to_json(line)
        await audit_log.record(
            con,
            ctx,
            AuditEntry(
                "stock.adjust",
                "stock",
                f"{depot_id}/{body.item}",
                before,
                after | {"delta": body.delta, "reason": body.reason},
            ),
        )
        return after
