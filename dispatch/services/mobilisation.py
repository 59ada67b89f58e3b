"""Mode changes with their consequences: re-planning and, on stand-down, demobilisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.access import Principal
from dispatch.audit import AuditContext
from dispatch.incidents import demand_changed
from dispatch.modes import ModeChange, TransitionKind
from dispatch.storage import demobilisation
from dispatch.storage import engine as engine_store
from dispatch.storage import modes as mode_store
from dispatch.storage.incidents import ChangeHook


async def change_mode(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    code: str,
    change: ModeChange,
    if_match: int | None,
    now: datetime,
    *,
    exercise: bool,
    debounce_s: float,
) -> dict[str, Any]:
    """Set a mode; in the same transaction, stand down what returned to routine and re-plan."""
    async with con.transaction():
        result = await mode_store.set_mode(con, who, ctx, code, change, if_match)
        out = dict(result.out)
        stood_down = [t.code for t in result.transitions if t.kind is TransitionKind.STOOD_DOWN]
        if stood_down:
            out["stand_down"] = await demobilisation.stand_down(
                con, ctx, code, stood_down, change.reason, now, exercise=exercise
            )
        if result.transitions:
            kinds = sorted({t.kind.value for t in result.transitions})
            await engine_store.request_replan(
                con, now, f"mode of {code}: {', '.join(kinds)}", debounce_s
            )
        return out


def incident_hook(now: datetime, *, exercise: bool, debounce_s: float) -> ChangeHook:
    """What the engine does when an incident changes, inside the change's transaction.

    A change that matters to the plan asks for a (debounced) re-plan; a closed incident frees
    its people and reserved supplies at once.
    """

    async def hook(
        con: asyncpg.Connection, before: dict[str, Any] | None, after: dict[str, Any]
    ) -> None:
        if after["status"] == "closed" and (before is None or before["status"] != "closed"):
            await demobilisation.release_incident(
                con, after["id"], now, why="incident closed", exercise=exercise
            )
        if demand_changed(before, after):
            await engine_store.request_replan(
                con, now, f"incident {after['id']} changed", debounce_s
            )

    return hook
