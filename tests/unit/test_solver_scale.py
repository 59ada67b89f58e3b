"""The large-instance paths: pruning, the certified cut bound and the local minimum-crew repair."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from solver import parse_snapshot, solve
from solver.bound import cut_bound, line_bound
from solver.crew import polish_min_crew
from solver.people import base_assignment, flow_assign, repair_min_crew, violated
from solver.problem import NONE, Problem, compile_problem, score
from solver.region import repair_region
from solver.synth import synthetic_city

solve_module = importlib.import_module("solver.solve")


def crew_problem(seed: int = 2) -> Problem:
    data = synthetic_city(600, 60, seed=seed, min_crew=True, locks=True, load=2.5)
    return compile_problem(parse_snapshot(data))


def open_capacity(problem: Problem) -> np.ndarray:
    return np.where(problem.line_open, problem.capacity, 0).astype(np.int32)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cut_bound_is_valid_under_pruning_and_exact_without(seed: int) -> None:
    problem = crew_problem(seed)
    full = problem.free_arcs()
    cap = open_capacity(problem)
    optimum = score(problem, flow_assign(problem, full, cap)).covered  # relaxation, all arcs
    assert cut_bound(problem, full, full, flow_assign(problem, full, cap)) == optimum
    for budget in (int(cap.sum()), 3 * int(cap.sum()), len(full[0]) // 4):
        arcs, pruned = solve_module._prune(problem, full, budget)
        assert pruned
        bound = cut_bound(problem, arcs, full, flow_assign(problem, arcs, cap))
        assert optimum <= bound <= line_bound(problem)


def test_region_covering_every_line_repairs_like_the_whole_model() -> None:
    problem = crew_problem()
    arcs = problem.free_arcs()
    cap = open_capacity(problem)
    relaxed = flow_assign(problem, arcs, cap)
    assert len(violated(problem, relaxed)) > 0
    whole = repair_min_crew(problem, arcs, relaxed, 6, capacity=cap, base=base_assignment(problem))
    region = repair_region(problem, arcs, relaxed, budget=len(arcs[0]))
    assert region.whole
    local = repair_min_crew(
        problem, region.arcs, relaxed, 6, capacity=region.capacity, base=region.base
    )
    assert np.array_equal(whole, local)


def test_local_region_repair_is_feasible_and_leaves_the_rest_alone() -> None:
    problem = crew_problem()
    arcs = problem.free_arcs()
    relaxed = flow_assign(problem, arcs, open_capacity(problem))
    short = violated(problem, relaxed)
    region = repair_region(problem, arcs, relaxed, budget=len(arcs[0]) // 10)
    assert not region.whole and region.lines[short].all()
    plan = repair_min_crew(
        problem, region.arcs, relaxed, 6, capacity=region.capacity, base=region.base
    )
    assert len(violated(problem, plan)) == 0
    locked = problem.fixed_line != NONE
    assert np.array_equal(plan[locked], problem.fixed_line[locked])
    outside = (relaxed >= 0) & ~region.lines[np.maximum(relaxed, 0)]
    assert np.array_equal(plan[outside], relaxed[outside])
    counts = np.bincount(plan[plan >= 0], minlength=problem.n_lines)
    assert (counts <= problem.line_count).all()
    released = relaxed.copy()  # the trivial repair: empty every short line
    released[np.isin(relaxed, short)] = NONE
    assert score(problem, plan).covered >= score(problem, released).covered


def test_pruned_solve_is_valid_bounded_and_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic_city(600, 60, seed=2, min_crew=True, locks=True, load=2.5)
    snap = parse_snapshot(data)
    problem = compile_problem(snap)
    full = problem.free_arcs()
    optimum = score(problem, flow_assign(problem, full, open_capacity(problem))).covered
    monkeypatch.setattr(solve_module, "ARC_BUDGET", len(full[0]) // 3)
    monkeypatch.setattr(solve_module, "REPAIR_BUDGET", len(full[0]) // 6)
    plan = solve(snap, time_limit_s=2, seed=0)
    assert plan.stats.pruned and plan.stats.method.startswith("flow-pruned+repair")
    assert plan.objective.covered_weight <= optimum <= plan.stats.best_bound
    assert plan.stats.best_bound <= line_bound(problem)
    assert plan.objective.covered_weight >= plan.stats.greedy_covered_weight
    persons = [a.person for a in plan.assignments]
    assert len(persons) == len(set(persons))
    lines = {(i["id"], d["skill"]): d for i in data["incidents"] for d in i["demands"]}
    locked = {(p["person"], p["incident"], p["skill"]) for p in data["previous"] if p["locked"]}
    got = {(a.person, a.incident, a.skill) for a in plan.assignments}
    assert locked <= got
    for key, demand in lines.items():
        on = [t for t in got if t[1:] == key]
        assert len(on) <= demand["count"]
        if on and not any(t in locked for t in on):
            assert len(on) >= demand.get("min", 1)
    assert solve(snap, time_limit_s=2, seed=0) == plan


def test_cp_sat_polish_within_a_region_keeps_the_rest_and_never_loses() -> None:
    problem = crew_problem()
    arcs = problem.free_arcs()
    relaxed = flow_assign(problem, arcs, open_capacity(problem))
    region = repair_region(problem, arcs, relaxed, budget=len(arcs[0]) // 10)
    repaired = repair_min_crew(
        problem, region.arcs, relaxed, 6, capacity=region.capacity, base=region.base
    )
    crew = polish_min_crew(
        problem,
        region.arcs,
        region.capacity,
        repaired,
        seed=0,
        deterministic_s=0.5,
        wall_s=10.0,
        base=region.base,
    )
    assert crew is not None
    assert len(violated(problem, crew.assign)) == 0
    outside = (relaxed >= 0) & ~region.lines[np.maximum(relaxed, 0)]
    assert np.array_equal(crew.assign[outside], relaxed[outside])
    assert not score(problem, repaired).better_than(score(problem, crew.assign))
