"""From a view of the world to solver snapshots, and from plans back to changes. Pure.

Incidents are planned in groups that share an emergency policy: the jurisdiction whose mode
they inherit (``source``) and its level. Groups are solved most severe first; people and stock
taken by one group are gone for the next, so a level-I district gets first call on mutual aid.
Who may be called in a group follows its policy's pools (on-duty staff → staff → volunteers →
reserves) and mutual-aid reach (the source's subtree; plus its siblings; plus the parent's
subtree). Depots in reach serve the group, and so do depots of the source's ancestors (a city
store serves every district).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dispatch.access import path_within
from dispatch.assignments import Status

#: Assignments the engine may take back when a plan no longer wants them (if not locked).
MOVABLE = frozenset({Status.OFFERED, Status.ACCEPTED})

SEVERITY = {"routine": 0, "IV": 1, "III": 2, "II": 3, "I": 4}


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The parts of a mode policy planning needs."""

    key: str
    pools: tuple[str, ...]
    mutual_aid: str
    max_travel_minutes: float
    priority_weights: dict[str, int]
    reassign_penalty_minutes: float
    offer_expiry_s: int
    replan_every_s: int


@dataclass(frozen=True, slots=True)
class PersonView:
    """A person as the planner sees them now."""

    id: str
    kind: str
    reserve: bool
    path: str
    lat: float
    lon: float
    skills: tuple[str, ...]
    hours_left: float
    available_now: bool


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An open incident with the demand still to plan and the policy that governs it."""

    id: str
    path: str
    lat: float
    lon: float
    priority: int
    demands: tuple[dict[str, Any], ...]
    supplies: dict[str, int]
    source_path: str | None
    policy: PolicyView


@dataclass(frozen=True, slots=True)
class DepotView:
    """A depot with the stock still free to allocate."""

    id: str
    path: str
    lat: float
    lon: float
    stock: dict[str, int]


@dataclass(frozen=True, slots=True)
class ActiveView:
    """An active assignment (offered, accepted, en route, on scene)."""

    id: str
    person_id: str
    incident_id: str
    skill: str
    status: Status
    locked: bool
    pinned: bool


@dataclass
class World:
    """Everything the planner reads from storage for one re-plan."""

    people: list[PersonView]
    incidents: list[IncidentView]
    depots: list[DepotView]
    active: list[ActiveView]
    excluded: dict[str, set[str]] = field(default_factory=dict)  # incident → people ids
    travel: dict[str, float] = field(
        default_factory=lambda: {"speed_kmh": 30.0, "road_factor": 1.3}
    )


@dataclass
class GroupResult:
    """One group's snapshot and the plan the solver returned for it."""

    key: str
    mode: str
    snapshot: dict[str, Any]
    plan: dict[str, Any]
    surplus: list[str] = field(default_factory=list)


def _parent(path: str) -> str | None:
    head, _, _ = path.rpartition("/")
    return head or None


def _reach(source: str | None, mutual_aid: str) -> Callable[[str], bool]:
    """Which home jurisdictions may be called for a group whose mode comes from ``source``."""
    if source is None:
        return lambda _p: True
    parent = _parent(source)
    if mutual_aid == "none" or parent is None:
        return lambda p: path_within(p, source)
    if mutual_aid == "siblings":
        return lambda p: path_within(p, parent) and not _is_own_level_of(p, parent)
    return lambda p: path_within(p, parent)


def _serves(depot_path: str, source: str | None) -> bool:
    """A depot of an ancestor jurisdiction (a city store) serves everything below it."""
    return source is None or path_within(source, depot_path)


def _is_own_level_of(path: str, parent: str) -> bool:
    """People registered directly at the parent node (not in any child) — excluded for siblings."""
    return path == parent


def in_pools(person: PersonView, pools: Iterable[str]) -> bool:
    """Whether the policy's pools include this person."""
    pools = set(pools)
    if person.reserve:
        return "reserves" in pools
    if person.kind == "staff":
        return "staff" in pools or ("on_duty_staff" in pools and person.available_now)
    return "volunteers" in pools and person.available_now


def group_key(inc: IncidentView) -> tuple[int, str, str]:
    """Sort key: most severe level first, then by source path for determinism."""
    return (-SEVERITY[inc.policy.key], inc.source_path or "", inc.policy.key)


def plan_world(
    world: World, solve: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[GroupResult]:
    """Build one snapshot per policy group, solve each (most severe first), return all results.

    ``solve`` maps a snapshot dict to a plan dict (the solver, injected so this stays pure).
    """
    groups: dict[tuple[int, str, str], list[IncidentView]] = {}
    for inc in sorted(world.incidents, key=lambda i: (group_key(i), i.id)):
        groups.setdefault(group_key(inc), []).append(inc)
    active_by_person = {a.person_id: a for a in world.active}
    incident_group = {inc.id: key for key, incs in groups.items() for inc in incs}
    taken: set[str] = set()
    # A committed person stays with their incident; an offered one may only move within its group.
    home_group = {a.person_id: incident_group.get(a.incident_id) for a in world.active}
    stock = {d.id: dict(d.stock) for d in world.depots}
    surplus = _surplus(world)
    # Each group looks only at the people it may call: those living in a jurisdiction in its
    # reach (decided once per distinct path) and those it already has; in roster order.
    by_path: dict[str, list[int]] = {}
    for n, p in enumerate(world.people):
        by_path.setdefault(p.path, []).append(n)
    index = {p.id: n for n, p in enumerate(world.people)}
    members: dict[tuple[int, str, str] | None, set[int]] = {}
    for pid, g in home_group.items():
        if pid in index:
            members.setdefault(g, set()).add(index[pid])
    results: list[GroupResult] = []
    for key, incs in groups.items():
        policy = incs[0].policy
        reach = _reach(incs[0].source_path, policy.mutual_aid)
        ids = {i.id for i in incs}
        people: list[dict[str, Any]] = []
        previous: list[dict[str, Any]] = []
        reached = {path for path in by_path if reach(path)}
        candidates = members.get(key, set()).union(*(by_path[path] for path in reached))
        pooled: dict[tuple[bool, str, bool], bool] = {}
        for n in sorted(candidates):
            p = world.people[n]
            if p.id in taken:
                continue
            act = active_by_person.get(p.id)
            if act is not None:
                if home_group.get(p.id) != key or act.incident_id not in ids or act.id in surplus:
                    continue
                fixed = act.pinned or act.locked
                skills = sorted(set(p.skills) | {act.skill})
                people.append(
                    _person(p, skills, max(p.hours_left, 0.01) if fixed else p.hours_left)
                )
                previous.append(
                    {
                        "person": p.id,
                        "incident": act.incident_id,
                        "skill": act.skill,
                        "locked": act.locked,
                        "pinned": act.pinned,
                    }
                )
                continue
            if p.id in home_group or p.path not in reached:
                continue
            kind = (p.reserve, p.kind, p.available_now)
            if kind not in pooled:
                pooled[kind] = in_pools(p, policy.pools)
            if not pooled[kind]:
                continue
            people.append(_person(p, sorted(p.skills), p.hours_left))
        present = {p["id"] for p in people}
        depots = [
            {
                "id": d.id,
                "lat": d.lat,
                "lon": d.lon,
                "stock": {k: v for k, v in sorted(stock[d.id].items()) if v > 0},
            }
            for d in world.depots
            if reach(d.path) or _serves(d.path, incs[0].source_path)
        ]
        snapshot = {
            "version": 1,
            "travel": {**world.travel, "max_minutes": policy.max_travel_minutes},
            "priority_weights": dict(policy.priority_weights),
            "people": people,
            "depots": depots,
            "incidents": [
                {
                    "id": i.id,
                    "lat": i.lat,
                    "lon": i.lon,
                    "priority": i.priority,
                    "demands": [dict(d) for d in i.demands],
                    "supplies": {k: v for k, v in sorted(i.supplies.items()) if v > 0},
                    "forbidden": sorted(world.excluded.get(i.id, set()) & present),
                }
                for i in incs
            ],
            "previous": previous,
            "reassign_penalty_minutes": policy.reassign_penalty_minutes,
        }
        plan = solve(snapshot)
        for a in plan["assignments"]:
            taken.add(a["person"])
        for al in plan["allocations"]:
            stock[al["depot"]][al["item"]] -= al["quantity"]
        results.append(
            GroupResult(
                _key_text(key),
                policy.key,
                snapshot,
                plan,
                sorted(a for a in surplus if surplus[a] in ids),
            )
        )
    return results


# Who keeps their place when a demand line shrinks: people already working first.
_PRECEDENCE = {Status.ON_SCENE: 0, Status.EN_ROUTE: 1, Status.ACCEPTED: 2, Status.OFFERED: 3}


def _surplus(world: World) -> dict[str, str]:
    """Fixed assignments that no longer fit their incident's demand (assignment → incident).

    A coordinator may lower a count or drop a skill line while people are locked to it; the
    most advanced ones keep their places and the rest are released rather than kept idle.
    """
    lines = {(i.id, d["skill"]): int(d["count"]) for i in world.incidents for d in i.demands}
    planned = {i.id for i in world.incidents}
    fixed = sorted(
        (a for a in world.active if (a.locked or a.pinned) and a.incident_id in planned),
        key=lambda a: (_PRECEDENCE.get(a.status, 4), a.id),
    )
    used: dict[tuple[str, str], int] = {}
    out: dict[str, str] = {}
    for a in fixed:
        line = (a.incident_id, a.skill)
        if used.get(line, 0) < lines.get(line, 0):
            used[line] = used.get(line, 0) + 1
        else:
            out[a.id] = a.incident_id
    return out


def _key_text(key: tuple[int, str, str]) -> str:
    return f"{key[2]}@{key[1] or '*'}"


def _person(p: PersonView, skills: list[str], hours_left: float) -> dict[str, Any]:
    return {"id": p.id, "lat": p.lat, "lon": p.lon, "skills": skills, "hours_left": hours_left}


@dataclass(frozen=True, slots=True)
class Offer:
    """A new assignment to offer."""

    person_id: str
    incident_id: str
    skill: str
    travel_minutes: float | None
    reason: str
    mode_key: str


@dataclass
class Changes:
    """What applying the plans changes: new offers, offers to withdraw, supplies to reserve,
    and fixed assignments to release because their demand line shrank."""

    offers: list[Offer]
    withdraw: list[str]
    allocations: list[dict[str, Any]]
    release: list[str] = field(default_factory=list)


def diff(results: list[GroupResult], active: list[ActiveView]) -> Changes:
    """Compare the plans with the assignments in force."""
    wanted: dict[tuple[str, str, str], tuple[dict[str, Any], str]] = {}
    for r in results:
        for a in r.plan["assignments"]:
            wanted[(a["person"], a["incident"], a["skill"])] = (a, r.mode)
    current = {(a.person_id, a.incident_id, a.skill): a for a in active}
    offers = [
        Offer(k[0], k[1], k[2], a.get("travel_minutes"), a.get("reason", ""), mode)
        for k, (a, mode) in sorted(wanted.items())
        if k not in current
    ]
    withdraw = sorted(
        a.id
        for k, a in current.items()
        if k not in wanted and a.status in MOVABLE and not a.locked and not a.pinned
    )
    allocations = [{**al, "mode_key": r.mode} for r in results for al in r.plan["allocations"]]
    release = sorted(a for r in results for a in r.surplus)
    return Changes(offers, withdraw, allocations, release)
