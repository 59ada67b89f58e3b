"""People assignment as a min-cost flow, plus a repair loop for minimum crew sizes.

Graph: source → person (cap 1) → demand line (cap 1, cost) → sink (cap free slots), with a
zero-cost source → sink bypass so nobody is forced to travel. The lexicographic objective is
folded into one integer cost per arc: ``-(weight × BIG) + minutes × scale`` where ``BIG``
exceeds any possible total of scaled minutes, so one more unit of covered weight always beats
any saving in travel. An unlocked previous assignment gets its reassignment penalty as a
discount on the arc that keeps it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from ortools.graph.python import min_cost_flow

from solver.problem import I32, NONE, Problem, score

__all__ = ["Arcs", "base_assignment", "flow_assign", "line_counts", "repair_min_crew", "violated"]

Arcs = tuple[I32, I32, npt.NDArray[np.float32]]  # person, line, minutes
_LIMIT = 2**61


def base_assignment(problem: Problem) -> I32:
    """Everyone unassigned except locked people, who stay on their line."""
    return problem.fixed_line.copy()


def line_counts(problem: Problem, assign: I32) -> I32:
    """People on each line (locked included)."""
    return np.bincount(assign[assign >= 0], minlength=problem.n_lines).astype(np.int32)


def violated(problem: Problem, assign: I32) -> I32:
    """Lines staffed but below their minimum crew."""
    n = line_counts(problem, assign)
    return np.flatnonzero((n > 0) & (n < problem.line_need)).astype(np.int32)


def arc_costs(problem: Problem, arcs: Arcs, n_units: int) -> tuple[npt.NDArray[np.int64], int]:
    """Integer arc costs for the lexicographic objective, and the weight multiplier BIG."""
    person, line, minutes = arcs
    wmax = int(problem.line_weight.max(initial=1)) + 1
    tmax = float(minutes.max(initial=0.0)) + problem.penalty
    for scale in (100.0, 10.0, 1.0, 0.1):
        big = int((n_units + 1) * (tmax * scale + 1)) + 1
        if 4 * wmax * big * (n_units + len(problem.line_skill) + 3) < _LIMIT:
            break
    travel = np.rint(minutes.astype(np.float64) * scale).astype(np.int64)
    keeps = problem.prev_line[person] == line
    travel -= np.where(keeps, round(problem.penalty * scale), 0)
    return travel - problem.line_weight[line] * big, big


def flow_assign(
    problem: Problem,
    arcs: Arcs,
    capacity: I32,
    forced: I32 | None = None,
    base: I32 | None = None,
) -> I32:
    """Optimal assignment over ``arcs`` with per-line ``capacity``, on top of ``base``.

    ``base`` (default: locked people only) holds everyone the arcs do not move; ``capacity``
    must be what its lines have left. ``forced`` lines get a bonus on their first ``need``
    units large enough to outweigh any other line, which is how the repair loop tries to lift a
    line to its minimum crew.
    """
    assign = base_assignment(problem) if base is None else base.copy()
    person, line, minutes = arcs
    keep = capacity[line] > 0
    person, line, minutes = person[keep], line[keep], minutes[keep]
    if len(person) == 0:
        return assign
    people, p_node = _compact(person, len(problem.person_ids))
    n_units = int(min(len(people), int(capacity.sum())))
    costs, big = arc_costs(problem, (person, line, minutes), n_units)
    source, sink, first_line = 0, 1, 2 + len(people)
    lines = np.flatnonzero(capacity > 0)
    tails = [np.zeros(len(people), np.int64), 2 + p_node.astype(np.int64)]
    heads = [2 + np.arange(len(people), dtype=np.int64), first_line + line.astype(np.int64)]
    caps = [np.ones(len(people), np.int64), np.ones(len(person), np.int64)]
    cost = [np.zeros(len(people), np.int64), costs]
    cap_line = capacity[lines].astype(np.int64)
    if forced is not None and len(forced):
        is_forced = np.zeros(problem.n_lines, dtype=np.bool_)
        is_forced[forced] = True
        head_room = np.minimum(problem.line_need - problem.line_fixed, capacity).astype(np.int64)
        first = np.where(is_forced[lines], np.maximum(head_room[lines], 0), 0)
        force_bonus = (int(problem.line_weight.max(initial=1)) + 1) * big
        tails.append(first_line + lines.astype(np.int64))
        heads.append(np.full(len(lines), sink, np.int64))
        caps.append(first)
        cost.append(np.full(len(lines), -force_bonus, np.int64))
        cap_line = cap_line - first
    tails += [first_line + lines.astype(np.int64), np.array([source])]
    heads += [np.full(len(lines), sink, np.int64), np.array([sink])]
    caps += [cap_line, np.array([n_units])]
    cost += [np.zeros(len(lines), np.int64), np.array([0])]
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails), np.concatenate(heads), np.concatenate(caps), np.concatenate(cost)
    )
    smcf.set_node_supply(source, n_units)
    smcf.set_node_supply(sink, -n_units)
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    first_arc = len(people)
    flows = smcf.flows(np.arange(first_arc, first_arc + len(person)))
    chosen = np.flatnonzero(flows > 0)
    assign[person[chosen]] = line[chosen]
    return assign


def _compact(person: I32, n_people: int) -> tuple[I32, I32]:
    """The distinct people (ascending) and each arc's index among them: ``np.unique`` with
    ``return_inverse``, by counting instead of sorting."""
    present = np.bincount(person, minlength=n_people) > 0
    people = np.flatnonzero(present).astype(np.int32)
    index = np.cumsum(present, dtype=np.int32) - 1
    return people, index[person]


def repair_min_crew(
    problem: Problem,
    arcs: Arcs,
    relaxed: I32,
    max_solves: int,
    *,
    capacity: I32,
    base: I32,
) -> I32:
    """A feasible plan honouring ``min`` from the relaxed flow plan (which ignores it).

    Only ``arcs`` move people, on top of ``base`` with ``capacity`` left per line (see
    :func:`flow_assign`). Two strategies share ``max_solves`` flow solves and the better plan
    wins: push short lines up to their minimum (closing those that still cannot make it), or
    close every short line so its people go elsewhere. When the solves run out, people on
    lines still short are released, which is always feasible.
    """
    if len(violated(problem, relaxed)) == 0:
        return relaxed
    best = _release_short(problem, relaxed)
    solves = max_solves
    for strategy in ("force", "close"):
        cap = capacity.copy()
        forced: set[int] = set()
        tried: set[int] = set()
        assign = relaxed
        while solves > 0:
            short = [int(x) for x in violated(problem, assign)]
            if not short:
                break
            for ln in short:
                # A line gets one chance to be lifted; after that it is closed.
                if strategy == "close" or ln in tried:
                    cap[ln] = 0
                    forced.discard(ln)
                else:
                    forced.add(ln)
                    tried.add(ln)
            force = np.array(sorted(forced), dtype=np.int32)
            assign = flow_assign(problem, arcs, cap, force, base)
            solves -= 1
        assign = _release_short(problem, assign)
        if score(problem, assign).better_than(score(problem, best)):
            best = assign
    return best


def _release_short(problem: Problem, assign: I32) -> I32:
    """Unassign everyone on a line below its minimum crew."""
    out = assign.copy()
    short = np.zeros(problem.n_lines, dtype=np.bool_)
    short[violated(problem, assign)] = True
    out[(out >= 0) & short[np.maximum(out, 0)]] = NONE
    return out
