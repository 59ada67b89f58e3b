"""Stored plans: every plan with its snapshot, so any decision can be replayed and explained.

The snapshot (the solver input of each group) is by far the largest part of a plan, so it is
stored as zlib-compressed compact JSON (``plans.snapshot_z``); :func:`snapshot` reads it back
(and the jsonb ``snapshot`` of plans stored before migration 0009).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from dispatch.access import Action, Principal
from dispatch.errors import NotFound
from dispatch.planning import GroupResult
from dispatch.storage.queries import queries

Q = queries("plans")


def encode_snapshot(results: Sequence[GroupResult]) -> bytes:
    """The stored form of a plan's snapshots (CPU work: run it off the event loop).

    Compact JSON of ``{"groups": [{"key", "mode", "snapshot"}]}``, zlib-compressed. The people
    of a snapshot are most of it and mostly the same from one plan to the next, so each
    person's JSON text is kept and re-used while their entry is unchanged.
    """
    groups = ",".join(
        f'{{"key":{_dumps(r.key)},"mode":{_dumps(r.mode)},"snapshot":{_snapshot_json(r.snapshot)}}}'
        for r in results
    )
    return zlib.compress(f'{{"groups":[{groups}]}}'.encode(), 1)


_PERSON_KEYS = ("id", "lat", "lon", "skills", "hours_left")  # dispatch.planning's person entry
_PERSON_JSON: dict[tuple[Any, ...], str] = {}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _snapshot_json(snapshot: dict[str, Any]) -> str:
    parts = []
    for k, v in snapshot.items():
        text = _people_json(v) if k == "people" else _dumps(v)
        parts.append(f"{_dumps(k)}:{text}")
    return "{" + ",".join(parts) + "}"


def _people_json(people: list[dict[str, Any]]) -> str:
    if len(_PERSON_JSON) > 50_000:  # about 20 MB
        _PERSON_JSON.clear()
    out = []
    for p in people:
        if tuple(p) != _PERSON_KEYS:
            out.append(_dumps(p))
            continue
        h, lat, lon = p["hours_left"], p["lat"], p["lon"]
        # Types too: 12 and 12.0 are equal keys but different JSON.
        key = (p["id"], lat, lon, tuple(p["skills"]), h, type(h), type(lat), type(lon))
        text = _PERSON_JSON.get(key)
        if text is None:
            text = _PERSON_JSON[key] = _dumps(p)
        out.append(text)
    return "[" + ",".join(out) + "]"


def decode_snapshot(data: bytes) -> dict[str, Any]:
    """The snapshots of a plan from their stored form."""
    doc: dict[str, Any] = json.loads(zlib.decompress(data))
    return doc


async def insert(
    con: asyncpg.Connection,
    *,
    now: datetime,
    trigger: str,
    snapshot: bytes,
    result: dict[str, Any],
    status: str,
    method: str,
    solve_seconds: float,
) -> int:
    """Store a plan (``snapshot`` from :func:`encode_snapshot`); returns its id."""
    plan_id: int = await con.fetchval(
        Q.insert, now, trigger, snapshot, result, status, method, solve_seconds
    )
    return plan_id


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": row["created_at"].isoformat(),
        "trigger": row["trigger"],
        "status": row["status"],
        "method": row["method"],
        "solve_seconds": row["solve_seconds"],
        "offers_made": row["offers_made"],
        "withdrawn": row["withdrawn"],
        "allocations_made": row["allocations_made"],
    }


async def _paths(con: asyncpg.Connection, incident_ids: set[str]) -> dict[str, str]:
    rows = await con.fetch(
        "SELECT i.id, j.path FROM incidents i JOIN jurisdictions j ON j.code = i.jurisdiction_code"
        " WHERE i.id = ANY($1::text[])",
        sorted(incident_ids),
    )
    return {r["id"]: r["path"] for r in rows}


def _incidents_of(result: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for g in result["groups"]:
        plan = g["plan"]
        out |= {a["incident"] for a in plan["assignments"]}
        out |= {a["incident"] for a in plan["allocations"]}
        out |= {u["incident"] for u in plan["unmet"]}
    return out


def _filtered(plan: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    return {
        **plan,
        "assignments": [a for a in plan["assignments"] if a["incident"] in keep],
        "allocations": [a for a in plan["allocations"] if a["incident"] in keep],
        "unmet": [u for u in plan["unmet"] if u["incident"] in keep],
    }


async def get(con: asyncpg.Connection, who: Principal, plan_id: int) -> dict[str, Any]:
    """A plan with its reasons, limited to the incidents in the caller's scope."""
    who.require("incident", Action.READ)
    row = await con.fetchrow(Q.get, plan_id)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    result = row["result"]
    paths = await _paths(con, _incidents_of(result))
    keep = {i for i, p in paths.items() if who.in_scope(p)}
    groups = [
        {"key": g["key"], "mode": g["mode"], **_filtered(g["plan"], keep)} for g in result["groups"]
    ]
    return {**_summary(row), "groups": groups}


async def snapshot(con: asyncpg.Connection, who: Principal, plan_id: int) -> dict[str, Any]:
    """The solver input of a stored plan (admins only: it holds everyone's location)."""
    who.require("audit", Action.READ)
    row = await con.fetchrow(Q.get_snapshot, plan_id)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    if row["snapshot_z"] is not None:
        return decode_snapshot(row["snapshot_z"])
    result: dict[str, Any] = row["snapshot"]
    return result


async def list_plans(
    con: asyncpg.Connection, who: Principal, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Recent plans, newest first (summaries)."""
    who.require("incident", Action.READ)
    return [_summary(r) for r in await con.fetch(Q.list, before, limit)]


async def for_incident(con: asyncpg.Connection, who: Principal, incident_id: str) -> dict[str, Any]:
    """The latest plan's view of one incident: picks with reasons, unmet demand, supplies."""
    who.require("incident", Action.READ)
    paths = await _paths(con, {incident_id})
    if incident_id not in paths or not who.in_scope(paths[incident_id]):
        raise NotFound(f"no incident {incident_id!r}")
    latest = await con.fetchval(Q.latest_id)
    picks: list[dict[str, Any]] = []
    unmet: list[dict[str, Any]] = []
    plan_allocs: list[dict[str, Any]] = []
    if latest is not None:
        row = await con.fetchrow(Q.get, latest)
        for g in row["result"]["groups"]:
            f = _filtered(g["plan"], {incident_id})
            picks += f["assignments"]
            unmet += f["unmet"]
            plan_allocs += f["allocations"]
    active = await con.fetch(Q.incident_active, incident_id)
    allocations = await con.fetch(Q.incident_allocations, incident_id)
    return {
        "incident": incident_id,
        "plan": latest,
        "picks": picks,
        "unmet": unmet,
        "assignments": [
            {
                "id": a["id"],
                "person": a["person_id"],
                "skill": a["skill"],
                "status": a["status"],
                "locked": a["locked"],
                "pinned": a["pinned"],
                "reason": a["reason"],
            }
            for a in active
        ],
        "allocations": [
            {
                "id": a["id"],
                "depot": a["depot_id"],
                "item": a["item"],
                "quantity": a["quantity"],
                "status": a["status"],
            }
            for a in allocations
        ],
    }


async def unmet(con: asyncpg.Connection, who: Principal) -> dict[str, Any]:
    """Unmet demand of the latest plan, per incident and skill or item, in the caller's scope."""
    who.require("incident", Action.READ)
    latest = await con.fetchval(Q.latest_id)
    if latest is None:
        return {"plan": None, "items": []}
    row = await con.fetchrow(Q.get, latest)
    result = row["result"]
    paths = await _paths(con, _incidents_of(result))
    items = [
        u
        for g in result["groups"]
        for u in g["plan"]["unmet"]
        if who.in_scope(paths.get(u["incident"], "/"))
    ]
    return {"plan": latest, "items": items}
