"""Hand-made snapshots with known optimal plans."""

from __future__ import annotations

from typing import Any

import numpy as np

from solver import Plan, parse_snapshot, solve
from solver.bench import main as bench_main
from solver.synth import synthetic_city
from solver.travel import haversine_km


def person(pid: str, skills: list[str], hours: float = 6) -> dict[str, Any]:
    return {"id": pid, "lat": 0.0, "lon": 0.0, "skills": skills, "hours_left": hours}


def incident(
    iid: str, demands: list[dict[str, Any]], priority: int = 1, **kw: Any
) -> dict[str, Any]:
    return {"id": iid, "lat": 0.0, "lon": 0.0, "priority": priority, "demands": demands, **kw}


def plan_for(people: list[Any], incidents: list[Any], matrix: dict[str, Any], **kw: Any) -> Plan:
    snap = {
        "version": 1,
        "travel": {"max_minutes": 45, "matrix": matrix},
        "people": people,
        "incidents": incidents,
        **kw,
    }
    return solve(parse_snapshot(snap), time_limit_s=2, seed=0)


def picks(plan: Plan) -> set[tuple[str, str, str]]:
    return {(a.person, a.incident, a.skill) for a in plan.assignments}


def test_haversine_matches_a_known_distance() -> None:
    # Shanghai People's Square to Beijing Tiananmen, about 1067 km.
    km = float(haversine_km(31.2304, 121.4737, 39.9042, 116.4074))
    assert abs(km - 1067.3) < 1.0


def test_travel_minutes_follow_speed_and_road_factor() -> None:
    snap = {
        "version": 1,
        "travel": {"speed_kmh": 60, "road_factor": 1.5, "max_minutes": 100},
        "people": [{"id": "p", "lat": 0.0, "lon": 0.0, "skills": ["a"], "hours_left": 1}],
        "incidents": [
            {
                "id": "i",
                "lat": 0.0,
                "lon": 0.5,
                "priority": 3,
                "demands": [{"skill": "a", "count": 1}],
            }
        ],
    }
    plan = solve(parse_snapshot(snap), time_limit_s=1, seed=0)
    km = float(haversine_km(0, 0, 0, 0.5))
    assert plan.assignments[0].travel_minutes is not None
    assert abs(plan.assignments[0].travel_minutes - km * 1.5) < 0.01


def test_optimiser_beats_greedy_where_closest_first_is_wrong() -> None:
    # p1 is closest to both incidents; p2 can only reach A. Greedy sends p1 to A and leaves B
    # empty; the optimum sends p2 to A and p1 to B.
    plan = plan_for(
        [person("p1", ["aid"]), person("p2", ["aid"])],
        [
            incident("A", [{"skill": "aid", "count": 1}]),
            incident("B", [{"skill": "aid", "count": 1}]),
        ],
        {"p1": {"A": 2, "B": 3}, "p2": {"A": 10}},
    )
    assert picks(plan) == {("p2", "A", "aid"), ("p1", "B", "aid")}
    assert plan.objective.covered_weight == 32
    assert plan.objective.travel_minutes == 13
    assert plan.stats.greedy_covered_weight == 16
    assert plan.stats.status == "optimal"
    reason = next(a for a in plan.assignments if a.person == "p2").reason
    assert "#2 of 2" in reason and "p1" in reason and "went to B/aid" in reason


def test_covered_weight_comes_before_travel() -> None:
    # One medic; the priority-1 incident is far, the priority-5 one is next door.
    plan = plan_for(
        [person("p1", ["aid"])],
        [
            incident("far", [{"skill": "aid", "count": 1}], priority=1),
            incident("near", [{"skill": "aid", "count": 1}], priority=5),
        ],
        {"p1": {"far": 40, "near": 1}},
    )
    assert picks(plan) == {("p1", "far", "aid")}
    assert [(u.incident, u.skill, u.missing) for u in plan.unmet] == [("near", "aid", 1)]


def test_line_below_its_minimum_crew_gets_nobody() -> None:
    # Two medics can reach "crew" (min 3) — useless there — so both go to "solo".
    plan = plan_for(
        [person("p1", ["aid"]), person("p2", ["aid"])],
        [
            incident("crew", [{"skill": "aid", "count": 3, "min": 3}], priority=1),
            incident("solo", [{"skill": "aid", "count": 2}], priority=4),
        ],
        {"p1": {"crew": 1, "solo": 9}, "p2": {"crew": 1, "solo": 9}},
    )
    assert picks(plan) == {("p1", "solo", "aid"), ("p2", "solo", "aid")}
    assert ("crew", "aid", 3) in [(u.incident, u.skill, u.missing) for u in plan.unmet]


def test_minimum_crew_that_needs_repair() -> None:
    # The flow relaxation puts one medic on "pair" (min 2) and one on "one"; the right plan
    # staffs "pair" fully (weight 2 x 16) rather than 16 + 8.
    plan = plan_for(
        [person("p1", ["aid"]), person("p2", ["aid"]), person("p3", ["aid"])],
        [
            incident("pair", [{"skill": "aid", "count": 2, "min": 2}], priority=1),
            incident("one", [{"skill": "aid", "count": 2}], priority=2),
        ],
        {"p1": {"pair": 5, "one": 1}, "p2": {"pair": 5, "one": 1}, "p3": {"one": 1}},
    )
    assert plan.objective.covered_weight == 40
    assert picks(plan) == {("p1", "pair", "aid"), ("p2", "pair", "aid"), ("p3", "one", "aid")}


def test_locked_assignment_stays_even_out_of_reach_and_exempts_min() -> None:
    plan = plan_for(
        [person("p1", ["aid"]), person("p2", ["aid"])],
        [
            incident("A", [{"skill": "aid", "count": 3, "min": 3}]),
            incident("B", [{"skill": "aid", "count": 1}]),
        ],
        {"p1": {"A": 90, "B": 1}, "p2": {"B": 2}},
        previous=[{"person": "p1", "incident": "A", "skill": "aid", "locked": True}],
    )
    assert picks(plan) == {("p1", "A", "aid"), ("p2", "B", "aid")}
    assert next(a for a in plan.assignments if a.person == "p1").change == "locked"


def test_pinned_works_like_locked() -> None:
    plan = plan_for(
        [person("p1", ["aid"])],
        [
            incident("A", [{"skill": "aid", "count": 1}], priority=5),
            incident("B", [{"skill": "aid", "count": 1}]),
        ],
        {"p1": {"A": 30, "B": 1}},
        previous=[{"person": "p1", "incident": "A", "skill": "aid", "pinned": True}],
    )
    assert picks(plan) == {("p1", "A", "aid")}


def test_forbidden_people_are_not_sent() -> None:
    plan = plan_for(
        [person("p1", ["aid"]), person("p2", ["aid"])],
        [incident("A", [{"skill": "aid", "count": 1}], forbidden=["p1"])],
        {"p1": {"A": 1}, "p2": {"A": 20}},
    )
    assert picks(plan) == {("p2", "A", "aid")}


def test_reassignment_penalty_keeps_the_plan_in_force() -> None:
    people = [person("p1", ["aid"]), person("p2", ["aid"])]
    incs = [incident("A", [{"skill": "aid", "count": 1}])]
    prev = [{"person": "p2", "incident": "A", "skill": "aid"}]
    matrix = {"p1": {"A": 5}, "p2": {"A": 12}}
    kept = plan_for(people, incs, matrix, previous=prev, reassign_penalty_minutes=10)
    assert picks(kept) == {("p2", "A", "aid")}
    assert kept.assignments[0].change == "kept"
    moved = plan_for(people, incs, matrix, previous=prev, reassign_penalty_minutes=5)
    assert picks(moved) == {("p1", "A", "aid")}
    assert moved.objective.reassignments == 1
    assert moved.objective.penalised_minutes == 10


def test_no_hours_or_wrong_skill_or_missing_pair_means_ineligible() -> None:
    plan = plan_for(
        [person("tired", ["aid"], hours=0), person("cook", ["food"]), person("far", ["aid"])],
        [incident("A", [{"skill": "aid", "count": 1}])],
        {"tired": {"A": 1}, "cook": {"A": 1}},
    )
    assert plan.assignments == []
    assert plan.stats.status == "infeasible"
    assert [(u.incident, u.skill, u.missing) for u in plan.unmet] == [("A", "aid", 1)]


def test_empty_snapshot_is_a_status_not_an_exception() -> None:
    plan = solve(parse_snapshot({"version": 1}), time_limit_s=1, seed=0)
    assert plan.stats.status == "empty"
    assert plan.assignments == [] and plan.unmet == []


def test_supplies_go_to_priority_first_then_nearest_depot() -> None:
    snap = {
        "version": 1,
        "travel": {"matrix": {"near": {"A": 5, "B": 5}, "far": {"A": 50, "B": 60}}},
        "depots": [
            {"id": "near", "lat": 0.0, "lon": 0.0, "stock": {"water": 100}},
            {"id": "far", "lat": 0.0, "lon": 0.0, "stock": {"water": 50}},
        ],
        "incidents": [
            {"id": "A", "lat": 0.0, "lon": 0.0, "priority": 4, "supplies": {"water": 120}},
            {"id": "B", "lat": 0.0, "lon": 0.0, "priority": 1, "supplies": {"water": 80}},
        ],
    }
    plan = solve(parse_snapshot(snap), time_limit_s=1, seed=0)
    sent = {(a.depot, a.incident): a.quantity for a in plan.allocations}
    assert sent == {("near", "B"): 80, ("near", "A"): 20, ("far", "A"): 50}
    assert [(u.incident, u.item, u.missing) for u in plan.unmet] == [("A", "water", 50)]
    assert plan.objective.supply_weighted_units == 80 * 16 + 70 * 2


def test_identical_input_gives_identical_plan_with_min_crews() -> None:
    data = synthetic_city(300, 30, seed=7, min_crew=True, locks=True, load=2.5)
    a = solve(parse_snapshot(data), time_limit_s=1, seed=5)
    b = solve(parse_snapshot(data), time_limit_s=1, seed=5)
    assert a == b
    assert a.to_dict()["assignments"] == b.to_dict()["assignments"]


def test_synthetic_city_plan_is_consistent() -> None:
    snap = parse_snapshot(synthetic_city(400, 40, seed=3))
    plan = solve(snap, time_limit_s=2, seed=0)
    assert plan.stats.status == "optimal"
    persons = [a.person for a in plan.assignments]
    assert len(persons) == len(set(persons))
    assert plan.objective.covered_weight >= plan.stats.greedy_covered_weight
    assert np.isclose(
        plan.objective.travel_minutes,
        sum(a.travel_minutes or 0 for a in plan.assignments),
        atol=0.1,
    )


def test_bench_runs_quickly_on_the_smallest_size(capsys: Any) -> None:
    assert bench_main(["--sizes", "S", "--variants", "plain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| size |") and "| S |" in out
