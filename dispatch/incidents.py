"""Incidents: what needs people and supplies, where, how urgently. Pure models and rules, no I/O.

Lifecycle: ``reported → active → contained → closed``.

- ``reported``  declared, not yet worked; may become ``active`` or ``closed`` (false alarm).
- ``active``    being worked; may become ``contained`` or ``closed``.
- ``contained`` under control; may flare up again (back to ``active``) or be ``closed``.
- ``closed``    final. Nothing reopens a closed incident: a recurrence is declared as a new
                incident, so the after-action record of the closed one never changes.

A move to the current status is refused too (it is not a transition). Priority 1 is the most
urgent and 5 the least (the solver weighs 1 highest).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from dispatch.errors import Conflict
from dispatch.geo import point
from dispatch.supplies import ItemCode, Location, Reason
from dispatch.validation import Code, Id, Name, Priority, Slug, Strict


class IncidentStatus(StrEnum):
    """Where an incident is in its lifecycle."""

    REPORTED = "reported"
    ACTIVE = "active"
    CONTAINED = "contained"
    CLOSED = "closed"


_NEXT: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.REPORTED: frozenset({IncidentStatus.ACTIVE, IncidentStatus.CLOSED}),
    IncidentStatus.ACTIVE: frozenset({IncidentStatus.CONTAINED, IncidentStatus.CLOSED}),
    IncidentStatus.CONTAINED: frozenset({IncidentStatus.ACTIVE, IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
}

#: Statuses in which an incident still needs people and supplies.
OPEN = frozenset({IncidentStatus.REPORTED, IncidentStatus.ACTIVE, IncidentStatus.CONTAINED})


def can_transition(current: IncidentStatus, target: IncidentStatus) -> bool:
    """Whether ``current → target`` is a legal step."""
    return target in _NEXT[current]


def transition(current: IncidentStatus | str, target: IncidentStatus | str) -> IncidentStatus:
    """The new status, or :class:`Conflict` naming the legal moves when the step is illegal."""
    cur, tgt = IncidentStatus(current), IncidentStatus(target)
    if can_transition(cur, tgt):
        return tgt
    allowed = sorted(s.value for s in _NEXT[cur])
    if cur is IncidentStatus.CLOSED:
        detail = "the incident is closed; a closed incident is final (declare a new one)"
    elif cur is tgt:
        detail = f"the incident is already {cur.value}"
    else:
        detail = f"an incident that is {cur.value} cannot become {tgt.value}"
    raise Conflict(detail, extra={"current_status": cur.value, "allowed": allowed})


IncidentType = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Description = Annotated[str, StringConstraints(max_length=5000)]
Headcount = Annotated[int, Field(ge=1, le=10_000)]
SupplyQuantity = Annotated[int, Field(gt=0, le=1_000_000_000)]


class Demand(Strict):
    """A demand line: ``count`` people with ``skill``; fewer than ``min`` is useless, so the
    engine sends nobody for this line unless it can send at least ``min``."""

    skill: Slug
    count: Headcount
    min: Headcount = 1

    @field_validator("min")
    @classmethod
    def _min_within_count(cls, value: int, info: ValidationInfo) -> int:
        count = info.data.get("count")
        if count is not None and value > count:
            raise ValueError(f"min ({value}) must not exceed count ({count})")
        return value


def _one_line_per_skill(demands: list[Demand]) -> list[Demand]:
    seen: set[str] = set()
    for d in demands:
        if d.skill in seen:
            raise ValueError(f"skill {d.skill!r} appears in more than one demand line")
        seen.add(d.skill)
    return demands


Demands = Annotated[list[Demand], Field(max_length=100)]
Supplies = Annotated[dict[ItemCode, SupplyQuantity], Field(max_length=200)]


class IncidentCreate(Strict):
    """Body of ``POST /v1/incidents``; ``id`` is generated when omitted. An incident starts
    ``reported`` unless the caller declares it ``active`` straight away."""

    id: Id | None = None
    type: IncidentType
    title: Name
    description: Description = ""
    location: Location
    jurisdiction: Code
    priority: Priority
    status: IncidentStatus = IncidentStatus.REPORTED
    demands: Demands = Field(default_factory=list)
    supplies: Supplies = Field(default_factory=dict)

    @field_validator("demands")
    @classmethod
    def _unique_skills(cls, value: list[Demand]) -> list[Demand]:
        return _one_line_per_skill(value)

    @field_validator("status")
    @classmethod
    def _initial_status(cls, value: IncidentStatus) -> IncidentStatus:
        if value not in (IncidentStatus.REPORTED, IncidentStatus.ACTIVE):
            raise ValueError("a new incident is either 'reported' or 'active'")
        return value


class IncidentPatch(Strict):
    """Body of ``PATCH /v1/incidents/{id}``: only the fields given change. ``demands`` and
    ``supplies`` replace the whole list/map. Status moves through ``/status``."""

    type: IncidentType | None = None
    title: Name | None = None
    description: Description | None = None
    location: Location | None = None
    jurisdiction: Code | None = None
    priority: Priority | None = None
    demands: Demands | None = None
    supplies: Supplies | None = None
    version: int | None = None

    @field_validator("demands")
    @classmethod
    def _unique_skills(cls, value: list[Demand] | None) -> list[Demand] | None:
        return None if value is None else _one_line_per_skill(value)


class StatusChange(Strict):
    """Body of ``POST /v1/incidents/{id}/status``."""

    status: IncidentStatus
    reason: Reason = ""
    version: int | None = None


#: Statuses the engine plans people and supplies for. A contained incident keeps the crew it has
#: but gets no new one; a closed incident releases everything.
PLANNED = frozenset({IncidentStatus.REPORTED, IncidentStatus.ACTIVE})

#: Fields of the public representation whose change alters what the engine must plan for.
_PLAN_FIELDS = ("location", "jurisdiction", "priority", "supplies")


def _planned(incident: Mapping[str, Any] | None) -> bool:
    return incident is not None and incident.get("status") in PLANNED


def _open(incident: Mapping[str, Any] | None) -> bool:
    return incident is not None and incident.get("status") in OPEN


def _demand_key(incident: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    return {d["skill"]: (d["count"], d.get("min", 1)) for d in incident.get("demands", [])}


def demand_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """Whether going from ``before`` to ``after`` changes what the engine must plan for.

    Both are public representations from :func:`to_json` (``None`` when the incident does not
    exist on that side). True when the incident enters or leaves the planned statuses
    (:data:`PLANNED`), when it closes (its crew and undelivered supplies come free), or, while
    planned, when its demand lines (compared by skill, in any order), supplies, location,
    jurisdiction (whose mode policy applies) or priority change. Title, description, type and
    ``reported → active`` do not matter to the plan.
    """
    if _planned(before) != _planned(after) or _open(before) != _open(after):
        return True
    if not _planned(before):
        return False
    assert before is not None and after is not None  # both planned
    if _demand_key(before) != _demand_key(after):
        return True
    return any(before.get(f) != after.get(f) for f in _PLAN_FIELDS)


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """Public representation of a stored incident row; ``geometry`` is a GeoJSON Point."""
    closed_at = row["closed_at"]
    return {
        "id": row["id"],
        "type": row["type"],
        "title": row["title"],
        "description": row["description"],
        "location": {"lat": row["lat"], "lon": row["lon"]},
        "geometry": point(row["lat"], row["lon"]),
        "jurisdiction": row["jurisdiction_code"],
        "priority": row["priority"],
        "status": row["status"],
        "open": row["status"] != IncidentStatus.CLOSED.value,
        "demands": row["demands"],
        "supplies": row["supplies"],
        "reported_at": row["reported_at"].isoformat(),
        "closed_at": closed_at.isoformat() if closed_at is not None else None,
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
