"""Load the planner's view of the world (:class:`dispatch.planning.World`) in a few queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatch import planning, roster
from dispatch.assignments import Status
from dispatch.modes import ModePolicy, policy_for
from dispatch.storage import modes as mode_store
from dispatch.storage.queries import queries

Q = queries("engine")

# Parsing a person's JSON columns is the slow part of a re-plan; rows change rarely, so parsed
# people are kept by (id, version). Bounded by the roster's size.
_PEOPLE_CACHE: dict[tuple[str, int], roster.Person] = {}


def policy_view(key: str, p: ModePolicy) -> planning.PolicyView:
    """The planner's view of a stored mode policy."""
    return planning.PolicyView(
        key=key,
        pools=tuple(pool.value for pool in p.callable_pools),
        mutual_aid=p.mutual_aid.value,
        max_travel_minutes=float(p.max_travel_minutes),
        priority_weights=dict(p.priority_weights),
        reassign_penalty_minutes=float(p.reassign_penalty_minutes),
        offer_expiry_s=p.offer_expiry_s,
        replan_every_s=p.replan_every_s,
    )


def _parsed(row: asyncpg.Record) -> roster.Person:
    key = (row["id"], row["version"])
    person = _PEOPLE_CACHE.get(key)
    if person is None:
        if len(_PEOPLE_CACHE) > 500_000:
            _PEOPLE_CACHE.clear()
        person = roster.person_from_row(dict(row))
        _PEOPLE_CACHE[key] = person
    return person


async def load(
    con: asyncpg.Connection, now: datetime
) -> tuple[planning.World, dict[str, planning.PolicyView]]:
    """Everything one re-plan needs, read in one repeatable-read snapshot."""
    async with con.transaction(isolation="repeatable_read", readonly=True):
        people_rows = await con.fetch(
            "SELECT p.*, j.path FROM people AS p JOIN jurisdictions AS j"
            " ON j.code = p.jurisdiction_code WHERE p.active ORDER BY p.id"
        )
        work = {r["person_id"]: r for r in await con.fetch(Q.world_work, now)}
        incident_rows = await con.fetch(Q.world_incidents)
        allocated: dict[tuple[str, str], int] = {
            (r["incident_id"], r["item"]): r["quantity"] for r in await con.fetch(Q.world_allocated)
        }
        depot_rows = await con.fetch(Q.world_depots)
        active_rows = await con.fetch(Q.world_active)
        excluded: dict[str, set[str]] = {}
        for r in await con.fetch(Q.world_excluded):
            excluded.setdefault(r["incident_id"], set()).add(r["person_id"])
        stored = await mode_store.load_policies(con)
        effective = await mode_store.effective_modes(
            con, {r["jurisdiction_code"] for r in incident_rows}
        )
        source_paths = {
            r["code"]: r["path"]
            for r in await con.fetch(
                "SELECT code, path FROM jurisdictions WHERE code = ANY($1::text[])",
                sorted({e.source for e in effective.values()}),
            )
        }
    today = now.date()
    people: list[planning.PersonView] = []
    for row in people_rows:
        person = _parsed(row)
        w = work.get(row["id"])
        hours_left = float(row["max_hours_per_24h"])
        if w is not None:
            hours_left -= float(w["hours"] or 0.0)
            last = w["last_released"]
            if last is not None and now - last < timedelta(hours=float(row["min_rest_hours"])):
                hours_left = 0.0
        people.append(
            planning.PersonView(
                id=row["id"],
                kind=row["kind"],
                reserve=row["reserve"],
                path=row["path"],
                lat=row["home_lat"],
                lon=row["home_lon"],
                skills=tuple(sorted(roster.effective_skills(person, today))),
                hours_left=max(0.0, hours_left),
                available_now=roster.is_available(person, now),
            )
        )
    policies: dict[str, planning.PolicyView] = {}
    incidents: list[planning.IncidentView] = []
    for row in incident_rows:
        eff = effective[row["jurisdiction_code"]]
        key = eff.mode.key
        if key not in policies:
            policies[key] = policy_view(key, policy_for(eff.mode, stored))
        supplies = {
            item: int(q) - allocated.get((row["id"], item), 0)
            for item, q in (row["supplies"] or {}).items()
        }
        incidents.append(
            planning.IncidentView(
                id=row["id"],
                path=row["path"],
                lat=row["lat"],
                lon=row["lon"],
                priority=row["priority"],
                demands=tuple(_demand(d) for d in row["demands"] or []),
                supplies={k: v for k, v in supplies.items() if v > 0},
                source_path=source_paths.get(eff.source) if eff.mode.is_emergency else None,
                policy=policies[key],
            )
        )
    depots = [
        planning.DepotView(
            id=r["id"],
            path=r["path"],
            lat=r["lat"],
            lon=r["lon"],
            stock={k: int(v) for k, v in (r["stock"] or {}).items()},
        )
        for r in depot_rows
    ]
    active = [
        planning.ActiveView(
            id=r["id"],
            person_id=r["person_id"],
            incident_id=r["incident_id"],
            skill=r["skill"],
            status=Status(r["status"]),
            locked=r["locked"],
            pinned=r["pinned"],
        )
        for r in active_rows
    ]
    world = planning.World(people, incidents, depots, active, excluded)
    return world, policies


def _demand(d: dict[str, Any]) -> dict[str, Any]:
    return {"skill": d["skill"], "count": int(d["count"]), "min": int(d.get("min", 1))}
