"""CP-SAT polish for minimum crews: only where the flow model cannot express the problem.

The model is small on purpose: each line keeps its nearest free candidates (plus every arc of
the hint), is hinted with the repaired flow plan, and runs single-threaded under a
deterministic time limit so the same snapshot and seed give the same plan.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from solver.people import Arcs, arc_costs
from solver.problem import I32, Problem

__all__ = ["CrewResult", "line_bounds", "polish_min_crew", "top_arcs"]


@dataclass(frozen=True, slots=True)
class CrewResult:
    """A CP-SAT answer: the assignment, whether proven optimal on its (reduced) model."""

    assign: I32
    optimal: bool
    status: str


def top_arcs(problem: Problem, arcs: Arcs, capacity: I32, extra: int) -> npt.NDArray[np.bool_]:
    """Mask of arcs that are among the ``capacity + extra`` nearest free candidates per line.

    ``arcs`` must be grouped by line in ascending order and sorted by minutes within a line,
    as :meth:`Problem.free_arcs` returns them (and any subset of those keeps it so).
    """
    bounds = line_bounds(problem, arcs)
    take = np.minimum(np.diff(bounds), capacity.astype(np.int64) + extra)
    mask = np.zeros(len(arcs[1]), dtype=np.bool_)
    for a, k in zip(bounds[:-1].tolist(), take.tolist(), strict=True):
        if k > 0:  # one slice per line beats per-arc ranks over millions of arcs
            mask[a : a + k] = True
    return mask


def line_bounds(problem: Problem, arcs: Arcs) -> npt.NDArray[np.int64]:
    """Line l's arcs are ``arcs[k][b[l]:b[l+1]]`` for arcs grouped by line in ascending order."""
    line = arcs[1]
    return np.searchsorted(line, np.arange(problem.n_lines + 1, dtype=line.dtype)).astype(np.int64)


def polish_min_crew(
    problem: Problem,
    arcs: Arcs,
    capacity: I32,
    hint: I32,
    *,
    seed: int,
    deterministic_s: float,
    wall_s: float,
    base: I32 | None = None,
    extra: int = 6,
) -> CrewResult | None:
    """Improve ``hint`` with CP-SAT on a reduced arc set; ``None`` if CP-SAT finds nothing.

    Only ``arcs`` move people, on top of ``base`` (default: locked people only), whose lines
    have ``capacity`` left.
    """
    person, line, minutes = arcs
    hinted = hint[person] == line
    keep = (top_arcs(problem, arcs, capacity, extra) | hinted) & (capacity[line] > 0)
    person, line, minutes, hinted = person[keep], line[keep], minutes[keep], hinted[keep]
    if len(person) == 0:
        return None
    n_units = int(min(len(np.unique(person)), int(capacity.sum())))
    costs, _ = arc_costs(problem, (person, line, minutes), n_units)
    model = cp_model.CpModel()
    pid, iid = problem.person_ids, problem.incident_ids
    x = [
        model.new_bool_var(f"x[{pid[p]},{iid[problem.line_incident[ln]]},{problem.line_skill[ln]}]")
        for p, ln in zip(person.tolist(), line.tolist(), strict=True)
    ]
    _one_slot_each(model, x, person)
    _line_limits(model, problem, x, line, capacity)
    model.maximize(sum(-int(c) * v for c, v in zip(costs.tolist(), x, strict=True)))
    for v, h in zip(x, hinted.tolist(), strict=True):
        model.add_hint(v, bool(h))
    solver = cp_model.CpSolver()
    solver.parameters.random_seed = seed
    solver.parameters.num_workers = 1
    solver.parameters.max_deterministic_time = max(0.05, deterministic_s)
    solver.parameters.max_time_in_seconds = max(0.1, wall_s)
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    chosen = np.array([solver.boolean_value(v) for v in x], dtype=np.bool_)
    assign = problem.fixed_line.copy() if base is None else base.copy()
    assign[person[chosen]] = line[chosen]
    return CrewResult(assign, status == cp_model.OPTIMAL, solver.status_name(status))


def _one_slot_each(model: cp_model.CpModel, x: list[cp_model.IntVar], person: I32) -> None:
    """A person fills one slot at most."""
    order = np.argsort(person, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(person[order]) != 0, True])
    for a, b in itertools.pairwise(bounds):
        if b - a > 1:
            model.add_at_most_one(x[k] for k in order[a:b])


def _line_limits(
    model: cp_model.CpModel, problem: Problem, x: list[cp_model.IntVar], line: I32, capacity: I32
) -> None:
    """Capacity per line; all-or-at-least-``min`` for crew lines without locked people."""
    order = np.argsort(line, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(line[order]) != 0, True])
    for a, b in itertools.pairwise(bounds):
        ln = int(line[order[a]])
        total = sum(x[k] for k in order[a:b])
        need = int(problem.line_need[ln])
        if problem.line_fixed[ln] == 0 and need > 1:
            name = (
                f"open[{problem.incident_ids[problem.line_incident[ln]]},{problem.line_skill[ln]}]"
            )
            is_open = model.new_bool_var(name)
            model.add(total >= need * is_open)
            model.add(total <= int(capacity[ln]) * is_open)
        else:
            model.add(total <= int(capacity[ln]))
