"""The solver's answer: assignments, allocations, unmet demand, objective and stats."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Allocation", "Assignment", "Change", "Objective", "Plan", "Stats", "Status", "Unmet"]

Status = Literal["optimal", "feasible", "infeasible", "empty"]
Change = Literal["new", "kept", "moved", "locked"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Person → incident role, with the reason this person was picked.

    ``rank`` is the person's position (1 = closest) among the ``eligible`` candidates for the
    line; ``change`` says how it relates to the plan in force (new, kept, moved, locked).
    """

    person: str
    incident: str
    skill: str
    travel_minutes: float | None
    rank: int
    eligible: int
    change: Change
    reason: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """Units of one item sent from a depot to an incident."""

    depot: str
    incident: str
    item: str
    quantity: int
    travel_minutes: float


@dataclass(frozen=True, slots=True)
class Unmet:
    """Demand the plan does not cover: ``missing`` people with ``skill`` or units of ``item``."""

    incident: str
    missing: int
    skill: str | None = None
    item: str | None = None


@dataclass(frozen=True, slots=True)
class Objective:
    """People first (covered weight, then minutes incl. penalties), then supplies."""

    covered_weight: int
    travel_minutes: float
    reassignments: int
    penalised_minutes: float
    supply_weighted_units: int
    supply_unit_minutes: float


@dataclass(frozen=True, slots=True)
class Stats:
    """How the plan was found. ``seconds`` is excluded from equality (it is wall time)."""

    status: Status
    method: str
    best_bound: int
    gap_percent: float
    greedy_covered_weight: int
    greedy_penalised_minutes: float
    candidates: int
    pruned: bool
    seed: int
    seconds: float = field(compare=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """A complete plan for one snapshot (version 1 of the plan JSON)."""

    assignments: list[Assignment]
    allocations: list[Allocation]
    unmet: list[Unmet]
    objective: Objective
    stats: Stats
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; ``unmet`` entries carry either ``skill`` or ``item``."""
        out = asdict(self)
        out["unmet"] = [{k: v for k, v in u.items() if v is not None} for u in out["unmet"]]
        return {"version": out.pop("version"), **out}

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
