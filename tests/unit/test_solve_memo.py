"""Re-using a group's previous plan: only when the solver must answer the same."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from dispatch.solve_memo import SolveMemo, same_solver_input
from solver import parse_snapshot, solve
from solver.synth import synthetic_city


def _plan(data: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    out = solve(parse_snapshot(data), time_limit_s=2, seed=seed).to_dict()
    out["stats"].pop("seconds")
    return out


@pytest.mark.parametrize(
    ("seed", "min_crew", "locks"), [(0, False, False), (1, True, False), (2, True, True)]
)
def test_the_solver_reads_hours_left_only_as_more_than_zero(
    seed: int, min_crew: bool, locks: bool
) -> None:
    """The contract the memo relies on (docs/snapshot.md): if this fails, the solver started to
    use the hours themselves, and :func:`same_solver_input` must compare them."""
    data = synthetic_city(300, 25, seed=seed, min_crew=min_crew, locks=locks, load=2.0)
    rng = random.Random(seed)
    other = copy.deepcopy(data)
    for p in other["people"]:
        if p["hours_left"] > 0:
            p["hours_left"] = round(rng.uniform(0.01, 24.0), 3)
    assert same_solver_input(data, other)
    assert _plan(data, seed) == _plan(other, seed)


def test_equivalent_input_is_recognised_and_any_other_difference_is_not() -> None:
    base = synthetic_city(50, 5, seed=3)
    working = next(p for p in base["people"] if p["hours_left"] > 0)
    drifted = copy.deepcopy(base)
    next(p for p in drifted["people"] if p["id"] == working["id"])["hours_left"] = 0.25
    assert same_solver_input(base, drifted)

    def changed(edit: Any) -> dict[str, Any]:
        d = copy.deepcopy(base)
        edit(d)
        return d

    for d in (
        changed(lambda d: d["people"][0].update(hours_left=0)),  # out of hours: unavailable
        changed(lambda d: d["people"][0].update(lat=d["people"][0]["lat"] + 0.01)),
        changed(lambda d: d["people"][0].update(skills=["translator"])),
        changed(lambda d: d["people"].pop()),
        changed(lambda d: d["incidents"][0].update(priority=1 + d["incidents"][0]["priority"] % 5)),
        changed(lambda d: d["incidents"][0].update(forbidden=[d["people"][0]["id"]])),
        changed(lambda d: d.update(reassign_penalty_minutes=99)),
    ):
        assert not same_solver_input(base, d)


def test_the_memo_returns_the_previous_plan_only_for_the_same_input_and_extras() -> None:
    calls: list[int] = []

    def fake(snap: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls)}

    base = synthetic_city(40, 4, seed=5)
    drifted = copy.deepcopy(base)
    for p in drifted["people"]:
        if p["hours_left"] > 0:
            p["hours_left"] += 0.5
    memo = SolveMemo()
    memo.begin()
    first = memo.solve(base, fake, "x")
    memo.begin()
    assert memo.solve(drifted, fake, "x") is first  # re-used
    assert memo.solve(base, fake, "other extras") is not first  # a different solve setting
    memo.begin()
    assert memo.solve(base, fake, "x") is first  # kept while each re-plan uses it
    memo.begin()
    memo.solve(synthetic_city(40, 4, seed=6), fake, "x")  # a re-plan without that group
    memo.begin()
    assert memo.solve(base, fake, "x") is not first  # forgotten
    assert (memo.hits, memo.misses) == (2, 4)
