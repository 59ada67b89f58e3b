"""``solve(snapshot) -> Plan``: the pure entry point that ties the methods together.

Order of work: compile → greedy baseline → min-cost flow (exact when the candidate graph fits
the budget) → bound on covered weight (certified on the full graph when the flow was pruned) →
minimum-crew repair and CP-SAT polish only when the flow plan breaks a ``min``, within a
neighbourhood of the short lines sized from a deterministic work estimate → keep whichever of
optimiser and greedy is better → supplies → reasons.
"""

from __future__ import annotations

import time

import numpy as np

from solver.bound import cut_bound, line_bound
from solver.crew import line_bounds, polish_min_crew, top_arcs
from solver.explain import explain
from solver.greedy import greedy_assign
from solver.people import Arcs, flow_assign, repair_min_crew, violated
from solver.plan import Objective, Plan, Stats, Status
from solver.problem import I32, Problem, Score, compile_problem, score
from solver.region import repair_region
from solver.snapshot import Snapshot
from solver.supplies import solve_supplies

__all__ = ["ARC_BUDGET", "greedy_plan", "solve"]

ARC_BUDGET = 600_000  # person–line arcs the exact flow takes; beyond it, nearest-first pruning
REPAIR_BUDGET = 400_000  # arcs for the repeated flow solves of the minimum-crew repair
REGION_MIN = 20_000  # the repair neighbourhood never gets fewer arcs than this
MIN_SOLVES = 8  # the neighbourhood is sized so that at least this many repair solves fit
# Work estimate used to size the repair deterministically (never from the wall clock):
# seconds per arc of one flow solve on this class of machine, with margin.
SECONDS_PER_ARC = 2.5e-6
SECONDS_PER_REASON = 3e-5  # explaining one assignment, with margin


def solve(snapshot: Snapshot, *, time_limit_s: float = 5.0, seed: int = 0) -> Plan:
    """Plan people and supplies for ``snapshot``.

    Pure and deterministic: the same snapshot and seed give the same plan (``stats.seconds``
    aside). Never raises for a valid snapshot; an empty or hopeless one yields a plan whose
    status says so, with all demand in ``unmet``.
    """
    start = time.perf_counter()
    problem = compile_problem(snapshot)
    greedy = greedy_assign(problem)
    greedy_score = score(problem, greedy)
    full = problem.free_arcs()
    arcs, pruned = _prune(problem, full, ARC_BUDGET)
    capacity = np.where(problem.line_open, problem.capacity, 0).astype(np.int32)
    relaxed = flow_assign(problem, arcs, capacity)
    bound = line_bound(problem)
    if pruned:
        bound = min(bound, cut_bound(problem, arcs, full, relaxed))
    else:
        bound = min(bound, score(problem, relaxed).covered)
    del full
    method = "flow-pruned" if pruned else "flow"
    proven = not pruned
    best = relaxed
    if len(violated(problem, relaxed)):
        proven = False
        best, how = _repair(problem, arcs, relaxed, bound, seed, time_limit_s, start)
        method += how
    best_score = score(problem, best)
    if greedy_score.better_than(best_score):
        best, best_score, method, proven = greedy, greedy_score, "greedy", False
    return _plan(
        problem,
        snapshot,
        best,
        best_score,
        greedy_score,
        bound=bound,
        method=method,
        proven=proven,
        candidates=len(arcs[0]),
        pruned=pruned,
        seed=seed,
        start=start,
    )


def greedy_plan(snapshot: Snapshot, *, seed: int = 0) -> Plan:
    """The greedy baseline alone: closest available people, most urgent incident first (what a
    dispatcher with a distance-sorted list would do); supplies as :func:`solve` allocates them.
    Pure and deterministic, like :func:`solve`."""
    start = time.perf_counter()
    problem = compile_problem(snapshot)
    assign = greedy_assign(problem)
    sc = score(problem, assign)
    return _plan(
        problem,
        snapshot,
        assign,
        sc,
        sc,
        bound=sc.covered,
        method="greedy",
        proven=False,
        candidates=0,
        pruned=False,
        seed=seed,
        start=start,
    )


def _plan(
    problem: Problem,
    snapshot: Snapshot,
    assign: I32,
    best: Score,
    greedy: Score,
    *,
    bound: int,
    method: str,
    proven: bool,
    candidates: int,
    pruned: bool,
    seed: int,
    start: float,
) -> Plan:
    """The :class:`Plan` of people assignment ``assign`` (scored ``best``): reasons, supplies,
    unmet demand in incident order, objective and stats."""
    assignments, unmet = explain(problem, assign)
    supplies = solve_supplies(snapshot)
    unmet += supplies.unmet
    order = _incident_order(problem)
    unmet.sort(key=lambda u: order[u.incident])
    status = _status(problem, snapshot, proven, len(assignments) + len(supplies.allocations))
    gap = 100.0 * (bound - best.covered) / bound if bound > 0 else 0.0
    return Plan(
        assignments=assignments,
        allocations=supplies.allocations,
        unmet=unmet,
        objective=Objective(
            covered_weight=best.covered,
            travel_minutes=round(best.travel, 2),
            reassignments=best.reassignments,
            penalised_minutes=round(best.penalised, 2),
            supply_weighted_units=supplies.weighted_units,
            supply_unit_minutes=supplies.unit_minutes,
        ),
        stats=Stats(
            status=status,
            method=method,
            best_bound=bound,
            gap_percent=round(max(gap, 0.0), 3),
            greedy_covered_weight=greedy.covered,
            greedy_penalised_minutes=round(greedy.penalised, 2),
            candidates=candidates,
            pruned=pruned,
            seed=seed,
            seconds=round(time.perf_counter() - start, 4),
        ),
    )


def _repair(
    problem: Problem,
    arcs: Arcs,
    relaxed: I32,
    bound: int,
    seed: int,
    time_limit_s: float,
    start: float,
) -> tuple[I32, str]:
    """Honour minimum crews: flow repair, then CP-SAT polish, both within a neighbourhood of
    the short lines sized from a deterministic work estimate. Returns the plan and the method
    suffix."""
    small, _ = _prune(problem, arcs, REPAIR_BUDGET, keep=relaxed)
    spent = SECONDS_PER_ARC * len(arcs[0])
    left = 0.7 * time_limit_s - spent
    budget = int(min(REPAIR_BUDGET, max(REGION_MIN, left / (SECONDS_PER_ARC * MIN_SOLVES))))
    region = repair_region(problem, small, relaxed, budget)
    n_arcs = max(1, len(region.arcs[0]))
    solves = max(MIN_SOLVES, min(int(left / (SECONDS_PER_ARC * n_arcs)), 30))
    best = repair_min_crew(
        problem, region.arcs, relaxed, solves, capacity=region.capacity, base=region.base
    )
    spent += solves * SECONDS_PER_ARC * n_arcs
    how = "+repair" if region.whole else "+repair-local"
    # CP-SAT is only worth its time when covered weight may still be short of the bound.
    if score(problem, best).covered >= bound or spent >= 0.6 * time_limit_s:
        return best, how
    # Wall-clock safety net only: leave time for the reasons, which cost per assignment.
    reserve = 0.2 + SECONDS_PER_REASON * int((best >= 0).sum())
    wall_left = time_limit_s - (time.perf_counter() - start) - reserve
    crew = polish_min_crew(
        problem,
        region.arcs,
        region.capacity,
        best,
        seed=seed,
        deterministic_s=0.15 * time_limit_s,
        wall_s=max(0.1, wall_left),
        base=region.base,
    )
    if crew is not None and score(problem, crew.assign).better_than(score(problem, best)):
        return crew.assign, how + "+cp-sat"
    return best, how


def _prune(problem: Problem, arcs: Arcs, budget: int, keep: I32 | None = None) -> tuple[Arcs, bool]:
    """The ``capacity + extra`` nearest candidates per line, ``extra`` as large as ``budget``
    allows; arcs used by the assignment ``keep`` always stay."""
    if len(arcs[0]) <= budget:
        return arcs, False
    capacity = problem.capacity
    person, line, _ = arcs
    lengths = np.diff(line_bounds(problem, arcs))
    lo, hi = 0, int(lengths.max())
    while lo < hi:  # largest extra whose top-(capacity + extra) lists fit the budget
        mid = (lo + hi + 1) // 2
        if int(np.minimum(lengths, capacity + mid).sum()) <= budget:
            lo = mid
        else:
            hi = mid - 1
    mask = top_arcs(problem, arcs, capacity, lo)
    if keep is not None:
        mask |= keep[person] == line
    return (arcs[0][mask], arcs[1][mask], arcs[2][mask]), True


def _incident_order(problem: Problem) -> dict[str, int]:
    return {ident: k for k, ident in enumerate(problem.incident_ids)}


def _status(problem: Problem, snapshot: Snapshot, proven: bool, picks: int) -> Status:
    demand = problem.n_lines > 0 or any(
        q > 0 for inc in snapshot.incidents for q in inc.supplies.values()
    )
    if not demand:
        return "empty"
    if picks == 0:
        return "infeasible"
    return "optimal" if proven else "feasible"
