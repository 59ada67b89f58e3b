"""The solver's input: a versioned, strictly validated snapshot of the world.

A snapshot is plain JSON (see ``docs/snapshot.md``). Parsing rejects unknown fields, wrong types
and dangling references, and every error names the offending field by JSON path
(``$.incidents[2].demands[0].min``) so a coordinator or the dispatch engine can fix it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_PRIORITY_WEIGHTS",
    "Demand",
    "Depot",
    "Incident",
    "Person",
    "Previous",
    "Snapshot",
    "SnapshotError",
    "Travel",
    "parse_snapshot",
]

DEFAULT_PRIORITY_WEIGHTS: dict[str, int] = {"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}

Id = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Minutes = Annotated[float, Field(ge=0, le=1440, allow_inf_nan=False)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000_000)]
PriorityKey = Literal["1", "2", "3", "4", "5"]


def _default_weights() -> dict[PriorityKey, int]:
    return {"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Travel(_Strict):
    """How travel minutes are obtained, and the reach limit for people."""

    speed_kmh: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 30.0
    road_factor: Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)] = 1.3
    max_minutes: Annotated[float, Field(gt=0, le=1440, allow_inf_nan=False)] = 45.0
    matrix: dict[Id, dict[Id, Minutes]] | None = None


class Person(_Strict):
    """A volunteer or staff member who may fill one demand slot."""

    id: Id
    lat: Lat
    lon: Lon
    skills: list[Name] = Field(default_factory=list)
    hours_left: Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Depot(_Strict):
    """A place holding supplies."""

    id: Id
    lat: Lat
    lon: Lon
    stock: dict[Name, Quantity] = Field(default_factory=dict)


class Demand(_Strict):
    """One demand line: ``count`` people with ``skill``, none at all if fewer than ``min``."""

    skill: Name
    count: Annotated[int, Field(ge=1, le=10_000)]
    min: Annotated[int, Field(ge=1, le=10_000)] = 1

    @model_validator(mode="after")
    def _min_within_count(self) -> Demand:
        if self.min > self.count:
            raise ValueError(f"min ({self.min}) must not exceed count ({self.count})")
        return self


class Incident(_Strict):
    """Something that needs people and/or supplies at a place."""

    id: Id
    lat: Lat
    lon: Lon
    priority: Annotated[int, Field(ge=1, le=5)]
    demands: list[Demand] = Field(default_factory=list)
    supplies: dict[Name, Quantity] = Field(default_factory=dict)
    forbidden: list[Id] = Field(default_factory=list)


class Previous(_Strict):
    """An assignment of the plan now in force.

    ``locked`` (the person accepted) and ``pinned`` (a coordinator pinned it) both mean the
    assignment must stay; an unlocked one may move at a cost of ``reassign_penalty_minutes``.
    """

    person: Id
    incident: Id
    skill: Name
    locked: bool = False
    pinned: bool = False

    @property
    def fixed(self) -> bool:
        """Whether the solver must keep this assignment."""
        return self.locked or self.pinned


class Snapshot(_Strict):
    """Everything the solver needs, version 1."""

    version: Literal[1]
    travel: Travel = Field(default_factory=Travel)
    priority_weights: dict[PriorityKey, Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=_default_weights
    )
    people: list[Person] = Field(default_factory=list)
    depots: list[Depot] = Field(default_factory=list)
    incidents: list[Incident] = Field(default_factory=list)
    previous: list[Previous] = Field(default_factory=list)
    reassign_penalty_minutes: Minutes = 10.0

    def weight(self, priority: int) -> int:
        """The weight of one filled slot (or one delivered unit) at ``priority``."""
        merged: dict[str, int] = dict(DEFAULT_PRIORITY_WEIGHTS)
        merged.update(self.priority_weights.items())
        return merged[str(priority)]


class SnapshotError(ValueError):
    """A malformed snapshot; ``errors`` holds ``(json_path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in errors))


def json_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic location tuple as a JSON path such as ``$.people[3].lat``."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def parse_snapshot(data: Any) -> Snapshot:
    """Validate decoded JSON (or a JSON string/bytes) into a :class:`Snapshot`.

    Raises :class:`SnapshotError` naming every bad field by JSON path.
    """
    try:
        if isinstance(data, str | bytes):
            data = json.loads(data)
        snap = Snapshot.model_validate(data)
    except json.JSONDecodeError as exc:
        raise SnapshotError([("$", f"not valid JSON: {exc}")]) from exc
    except ValidationError as exc:
        errors = [(json_path(tuple(e["loc"])), e["msg"]) for e in exc.errors(include_url=False)]
        raise SnapshotError(errors) from exc
    problems = _cross_check(snap)
    if problems:
        raise SnapshotError(problems)
    return snap


def _duplicates(ids: list[str], section: str) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for k, ident in enumerate(ids):
        if ident in seen:
            out.append((f"$.{section}[{k}].id", f"duplicate id {ident!r}"))
        seen.add(ident)
    return out


def _cross_check(snap: Snapshot) -> list[tuple[str, str]]:
    """References and invariants a field-level schema cannot express."""
    errs = _duplicates([p.id for p in snap.people], "people")
    errs += _duplicates([d.id for d in snap.depots], "depots")
    errs += _duplicates([i.id for i in snap.incidents], "incidents")
    people = {p.id: p for p in snap.people}
    incidents = {i.id: i for i in snap.incidents}
    for k, inc in enumerate(snap.incidents):
        skills_seen: set[str] = set()
        for j, dem in enumerate(inc.demands):
            if dem.skill in skills_seen:
                errs.append(
                    (f"$.incidents[{k}].demands[{j}].skill", f"duplicate demand line {dem.skill!r}")
                )
            skills_seen.add(dem.skill)
        for j, pid in enumerate(inc.forbidden):
            if pid not in people:
                errs.append((f"$.incidents[{k}].forbidden[{j}]", f"unknown person {pid!r}"))
    errs += _check_previous(snap, people, incidents)
    if snap.travel.matrix is not None:
        origins = set(people) | {d.id for d in snap.depots}
        for origin, row in snap.travel.matrix.items():
            if origin not in origins:
                errs.append((json_path(("travel", "matrix", origin)), "unknown person or depot"))
            for dest in row:
                if dest not in incidents:
                    errs.append((json_path(("travel", "matrix", origin, dest)), "unknown incident"))
    return errs


def _check_previous(
    snap: Snapshot, people: dict[str, Person], incidents: dict[str, Incident]
) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    seen_person: set[str] = set()
    fixed_per_line: dict[tuple[str, str], int] = {}
    for k, prev in enumerate(snap.previous):
        base = f"$.previous[{k}]"
        if prev.person not in people:
            errs.append((f"{base}.person", f"unknown person {prev.person!r}"))
        elif prev.person in seen_person:
            errs.append((f"{base}.person", f"person {prev.person!r} appears twice"))
        seen_person.add(prev.person)
        inc = incidents.get(prev.incident)
        if inc is None:
            errs.append((f"{base}.incident", f"unknown incident {prev.incident!r}"))
            continue
        if not prev.fixed:
            continue
        line = next((d for d in inc.demands if d.skill == prev.skill), None)
        if line is None:
            errs.append((f"{base}.skill", f"locked to {prev.incident!r}, which has no such line"))
            continue
        if prev.person in inc.forbidden:
            errs.append((f"{base}.person", f"locked to {prev.incident!r}, which forbids them"))
        n = fixed_per_line.get((prev.incident, prev.skill), 0) + 1
        fixed_per_line[(prev.incident, prev.skill)] = n
        if n > line.count:
            errs.append((base, f"more locked people than {prev.incident!r} needs {prev.skill!r}"))
    return errs
