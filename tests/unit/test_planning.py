"""The planner's pure parts: grouping by policy, pools, mutual aid, and the plan diff."""

from __future__ import annotations

from typing import Any

from dispatch import planning
from dispatch.assignments import Status
from dispatch.services.engine import solve_snapshot

ROUTINE = planning.PolicyView(
    "routine",
    ("on_duty_staff",),
    "none",
    30,
    {"1": 16, "2": 8, "3": 4, "4": 2, "5": 1},
    10,
    14400,
    3600,
)
LEVEL_II = planning.PolicyView(
    "II",
    ("staff", "volunteers", "reserves"),
    "none",
    60,
    {"1": 32, "2": 16, "3": 6, "4": 2, "5": 1},
    10,
    180,
    30,
)
LEVEL_I = planning.PolicyView(
    "I",
    ("staff", "volunteers", "reserves", "mutual_aid"),
    "siblings_and_parent",
    90,
    {"1": 64, "2": 24, "3": 8, "4": 2, "5": 1},
    10,
    120,
    15,
)


def person(
    pid: str,
    path: str,
    *,
    kind: str = "volunteer",
    skills: tuple[str, ...] = ("first_aid",),
    lat: float = 31.20,
    lon: float = 121.40,
    available: bool = True,
    reserve: bool = False,
) -> planning.PersonView:
    return planning.PersonView(pid, kind, reserve, path, lat, lon, skills, 8.0, available)


def incident(
    iid: str,
    path: str,
    policy: planning.PolicyView,
    source: str | None,
    count: int = 1,
    skill: str = "first_aid",
    priority: int = 1,
) -> planning.IncidentView:
    return planning.IncidentView(
        iid,
        path,
        31.21,
        121.41,
        priority,
        ({"skill": skill, "count": count, "min": 1},),
        {},
        source,
        policy,
    )


def solve(snapshot: dict[str, Any]) -> dict[str, Any]:
    return solve_snapshot(snapshot, 1.0, 0)


def test_routine_calls_only_on_duty_staff() -> None:
    world = planning.World(
        people=[
            person("vol", "/c/a"),
            person("staff-off", "/c/a", kind="staff", available=False),
            person("staff-on", "/c/a", kind="staff", lat=31.25),
        ],
        incidents=[incident("i1", "/c/a", ROUTINE, None)],
        depots=[],
        active=[],
    )
    results = planning.plan_world(world, solve)
    picked = [a["person"] for r in results for a in r.plan["assignments"]]
    assert picked == ["staff-on"]


def test_emergency_reaches_only_its_own_subtree_without_mutual_aid() -> None:
    world = planning.World(
        people=[person("in-a", "/c/a/s1", lat=31.3), person("in-b", "/c/b")],
        incidents=[incident("i1", "/c/a", LEVEL_II, "/c/a")],
        depots=[],
        active=[],
    )
    results = planning.plan_world(world, solve)
    assert [a["person"] for a in results[0].plan["assignments"]] == ["in-a"]
    ids = [p["id"] for p in results[0].snapshot["people"]]
    assert ids == ["in-a"]


def test_level_one_mutual_aid_reaches_siblings_and_is_served_first() -> None:
    world = planning.World(
        people=[person("in-b", "/c/b")],
        incidents=[
            incident("i-a", "/c/a", LEVEL_I, "/c/a"),
            incident("i-b", "/c/b", LEVEL_II, "/c/b"),
        ],
        depots=[],
        active=[],
    )
    results = planning.plan_world(world, solve)
    assert [r.mode for r in results] == ["I", "II"]
    assert results[0].plan["assignments"][0]["person"] == "in-b"
    # Taken by the more severe group, so the level-II incident stays unmet.
    assert results[1].plan["assignments"] == []
    assert results[1].plan["unmet"][0]["incident"] == "i-b"


def test_declined_people_are_forbidden_for_that_incident() -> None:
    world = planning.World(
        people=[person("near", "/c/a"), person("far", "/c/a", lat=31.3)],
        incidents=[incident("i1", "/c/a", LEVEL_II, "/c/a")],
        depots=[],
        active=[],
        excluded={"i1": {"near"}},
    )
    results = planning.plan_world(world, solve)
    assert [a["person"] for a in results[0].plan["assignments"]] == ["far"]


def test_accepted_assignment_is_kept_and_diff_makes_no_change() -> None:
    active = [planning.ActiveView("a1", "far", "i1", "first_aid", Status.ACCEPTED, True, False)]
    world = planning.World(
        people=[person("near", "/c/a"), person("far", "/c/a", lat=31.3)],
        incidents=[incident("i1", "/c/a", LEVEL_II, "/c/a")],
        depots=[],
        active=active,
    )
    results = planning.plan_world(world, solve)
    changes = planning.diff(results, active)
    assert changes.offers == [] and changes.withdraw == []


def test_unlocked_offer_moves_to_a_better_fit_and_is_withdrawn() -> None:
    active = [planning.ActiveView("a1", "far", "i1", "first_aid", Status.OFFERED, False, False)]
    world = planning.World(
        people=[person("near", "/c/a"), person("far", "/c/a", lat=31.5)],
        incidents=[incident("i1", "/c/a", LEVEL_II, "/c/a")],
        depots=[],
        active=active,
    )
    changes = planning.diff(planning.plan_world(world, solve), active)
    assert [o.person_id for o in changes.offers] == ["near"]
    assert changes.withdraw == ["a1"]


def test_supplies_are_not_double_counted_across_groups() -> None:
    depot = planning.DepotView("d1", "/c", 31.2, 121.4, {"water_l": 100})
    inc_a = planning.IncidentView(
        "i-a", "/c/a", 31.21, 121.41, 1, (), {"water_l": 80}, "/c/a", LEVEL_I
    )
    inc_b = planning.IncidentView(
        "i-b", "/c/b", 31.21, 121.41, 1, (), {"water_l": 80}, "/c/b", LEVEL_II
    )
    world = planning.World(people=[], incidents=[inc_a, inc_b], depots=[depot], active=[])
    results = planning.plan_world(world, solve)
    total = sum(al["quantity"] for r in results for al in r.plan["allocations"])
    assert total == 100
