"""Property tests: every plan is valid, never worse than greedy, optimal where it says so."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver import Plan, parse_snapshot, solve
from solver.bound import cut_bound
from solver.crew import top_arcs
from solver.people import flow_assign
from solver.problem import compile_problem

SKILLS = ["a", "b", "c"]
MAX_MINUTES = 30
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def snapshots(draw: st.DrawFn) -> dict[str, Any]:
    n_people = draw(st.integers(0, 4))
    n_inc = draw(st.integers(0, 3))
    people: list[dict[str, Any]] = [
        {
            "id": f"p{k}",
            "lat": 0.0,
            "lon": 0.0,
            "skills": draw(st.lists(st.sampled_from(SKILLS), max_size=2, unique=True)),
            "hours_left": draw(st.sampled_from([0, 2, 6])),
        }
        for k in range(n_people)
    ]
    incidents: list[dict[str, Any]] = []
    for k in range(n_inc):
        lines = []
        for skill in draw(st.lists(st.sampled_from(SKILLS), min_size=1, max_size=2, unique=True)):
            count = draw(st.integers(1, 3))
            lines.append({"skill": skill, "count": count, "min": draw(st.integers(1, count))})
        forbidden: list[str] = []
        if len(people) > 0 and draw(st.booleans()):
            forbidden = draw(st.lists(st.sampled_from([p["id"] for p in people]), unique=True))
        incidents.append(
            {
                "id": f"i{k}",
                "lat": 0.0,
                "lon": 0.0,
                "priority": draw(st.integers(1, 5)),
                "demands": lines,
                "supplies": {"w": draw(st.integers(0, 30))},
                "forbidden": forbidden,
            }
        )
    matrix: dict[str, dict[str, float]] = {}
    for origin in [p["id"] for p in people] + ["d0", "d1"]:
        matrix[origin] = {
            i["id"]: draw(st.integers(0, 40)) for i in incidents if draw(st.integers(0, 4)) > 0
        }
    previous = []
    used_line: dict[tuple[str, str], int] = {}
    for p in people:
        if not incidents or not draw(st.booleans()):
            continue
        inc = draw(st.sampled_from(incidents))
        line = draw(st.sampled_from(inc["demands"]))
        key = (inc["id"], line["skill"])
        locked = draw(st.booleans())
        if locked and (p["id"] in inc["forbidden"] or used_line.get(key, 0) >= line["count"]):
            locked = False
        if locked:
            used_line[key] = used_line.get(key, 0) + 1
        previous.append(
            {"person": p["id"], "incident": inc["id"], "skill": line["skill"], "locked": locked}
        )
    depots = [
        {"id": d, "lat": 0.0, "lon": 0.0, "stock": {"w": draw(st.integers(0, 40))}}
        for d in ("d0", "d1")
    ]
    return {
        "version": 1,
        "travel": {"max_minutes": MAX_MINUTES, "matrix": matrix},
        "reassign_penalty_minutes": draw(st.sampled_from([0, 5, 10])),
        "people": people,
        "depots": depots,
        "incidents": incidents,
        "previous": previous,
    }


def _lines(data: dict[str, Any]) -> list[tuple[str, str, int, int, int]]:
    weights = {1: 16, 2: 8, 3: 4, 4: 2, 5: 1}
    return [
        (i["id"], d["skill"], d["count"], d["min"], weights[i["priority"]])
        for i in data["incidents"]
        for d in i["demands"]
    ]


def _eligible(data: dict[str, Any], person: dict[str, Any], inc_id: str, skill: str) -> bool:
    inc = next(i for i in data["incidents"] if i["id"] == inc_id)
    minutes = data["travel"]["matrix"][person["id"]].get(inc_id)
    return (
        skill in person["skills"]
        and person["hours_left"] > 0
        and minutes is not None
        and minutes <= MAX_MINUTES
        and person["id"] not in inc["forbidden"]
    )


def brute_force(data: dict[str, Any]) -> tuple[int, float]:
    """Best (covered weight, penalised minutes) by enumerating every assignment."""
    lines = _lines(data)
    locked = {p["person"]: (p["incident"], p["skill"]) for p in data["previous"] if p["locked"]}
    prev = {p["person"]: (p["incident"], p["skill"]) for p in data["previous"] if not p["locked"]}
    free = [p for p in data["people"] if p["id"] not in locked]
    options = [[None] + [(i, s) for i, s, *_ in lines if _eligible(data, p, i, s)] for p in free]
    mx = data["travel"]["matrix"]
    best = (-1, 0.0)
    for choice in itertools.product(*options):
        chosen = dict(zip([p["id"] for p in free], choice, strict=True)) | locked
        covered, minutes = 0, 0.0
        ok = True
        for inc, skill, count, need, weight in lines:
            on = [pid for pid, c in chosen.items() if c == (inc, skill)]
            n_locked = sum(1 for pid in on if pid in locked)
            if len(on) > count or (n_locked == 0 and 0 < len(on) < need):
                ok = False
                break
            covered += weight * len(on)
            minutes += sum(mx[pid].get(inc, 0) for pid in on)
        if not ok:
            continue
        minutes += data["reassign_penalty_minutes"] * sum(
            1 for pid, was in prev.items() if chosen.get(pid) != was
        )
        if covered > best[0] or (covered == best[0] and minutes < best[1]):
            best = (covered, minutes)
    return best


def check_valid(data: dict[str, Any], plan: Plan) -> None:
    people = {p["id"]: p for p in data["people"]}
    persons = [a.person for a in plan.assignments]
    assert len(persons) == len(set(persons)), "a person fills two slots"
    locked = {(p["person"], p["incident"], p["skill"]) for p in data["previous"] if p["locked"]}
    got = {(a.person, a.incident, a.skill) for a in plan.assignments}
    assert locked <= got, "a locked assignment was dropped"
    for a in plan.assignments:
        if (a.person, a.incident, a.skill) not in locked:
            assert _eligible(data, people[a.person], a.incident, a.skill)
    for inc, skill, count, need, _ in _lines(data):
        on = [t for t in got if t[1:] == (inc, skill)]
        assert len(on) <= count
        if not any(t in locked for t in on):
            assert len(on) == 0 or len(on) >= need, f"{inc}/{skill} below its minimum crew"
    stock = {d["id"]: d["stock"]["w"] for d in data["depots"]}
    demand = {i["id"]: i["supplies"]["w"] for i in data["incidents"]}
    for alloc in plan.allocations:
        stock[alloc.depot] -= alloc.quantity
        demand[alloc.incident] -= alloc.quantity
    assert min(stock.values(), default=0) >= 0, "stock exceeded"
    assert min(demand.values(), default=0) >= 0, "over-delivered"


@PROPS
@given(snapshots())
def test_plans_are_valid_and_never_worse_than_greedy(data: dict[str, Any]) -> None:
    plan = solve(parse_snapshot(data), time_limit_s=1, seed=0)
    check_valid(data, plan)
    assert (plan.objective.covered_weight, -plan.objective.penalised_minutes) >= (
        plan.stats.greedy_covered_weight,
        -plan.stats.greedy_penalised_minutes,
    )
    assert plan.objective.covered_weight <= plan.stats.best_bound


@PROPS
@given(snapshots())
def test_plan_matches_brute_force_optimum(data: dict[str, Any]) -> None:
    plan = solve(parse_snapshot(data), time_limit_s=1, seed=0)
    covered, minutes = brute_force(data)
    assert plan.objective.covered_weight <= covered
    if plan.stats.status in ("optimal", "infeasible", "empty"):
        assert plan.objective.covered_weight == covered
        assert abs(plan.objective.penalised_minutes - minutes) < 1e-6


@settings(max_examples=40, deadline=None)
@given(snapshots(), st.integers(0, 3))
def test_identical_input_gives_identical_plan(data: dict[str, Any], seed: int) -> None:
    a = solve(parse_snapshot(data), time_limit_s=1, seed=seed)
    b = solve(parse_snapshot(data), time_limit_s=1, seed=seed)
    assert a == b


@PROPS
@given(snapshots(), st.integers(0, 2))
def test_cut_bound_holds_under_any_pruning(data: dict[str, Any], extra: int) -> None:
    problem = compile_problem(parse_snapshot(data))
    full = problem.free_arcs()
    capacity = np.where(problem.line_open, problem.capacity, 0).astype(np.int32)
    keep = top_arcs(problem, full, capacity, extra - 1)  # as little as capacity - 1 per line
    pruned = (full[0][keep], full[1][keep], full[2][keep])
    relaxed = flow_assign(problem, pruned, capacity)
    assert cut_bound(problem, pruned, full, relaxed) >= brute_force(data)[0]
