"""The drill's planner: the engine's own planning, with slowed roads and an optional greedy policy.

The engine accepts a ``planner`` (``Engine(..., planner=...)``); a drill passes the function
built here, which runs the same :func:`dispatch.planning.plan_world` and the same solver as live
operation, with two additions a scenario may ask for:

- **Slowed roads** (``travel_slowed``). The live travel model is one speed and road factor for a
  whole snapshot. When an incident lies in a slowed area, that group's snapshot gets an explicit
  ``travel.matrix`` (the solver's documented input for routed travel times): the same haversine ×
  road factor / speed minutes, multiplied by the area's factor for incidents inside it; pairs
  beyond a day are left out (unreachable). Snapshots without slowed incidents are untouched, so
  a drill without slowed roads plans exactly as live does. The matrix is added to the parsed
  snapshot only: the stored plan snapshot stays small and the report lists the factors in force.
- **Policy** ``greedy``: the closest-available people plan (the solver's own baseline,
  :func:`solver.solve.greedy_plan`) instead of the optimiser; supplies are allocated as usual.
  For ``muster drill compare`` of optimised vs greedy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from dispatch import planning
from dispatch.access import path_within
from dispatch.solve_memo import SolveMemo
from solver import Snapshot, parse_snapshot, solve
from solver.solve import greedy_plan
from solver.travel import travel_minutes

__all__ = ["Policy", "make_planner", "with_area_factors"]

Policy = Literal["optimised", "greedy"]
Planner = Callable[[planning.World, float, int], list[planning.GroupResult]]


def with_area_factors(snap: Snapshot, factors: Mapping[str, float]) -> Snapshot:
    """``snap`` with a travel matrix in which trips to incident ``i`` take ``factors[i]`` × longer."""
    base = snap.travel.model_copy(update={"matrix": None})
    origins = [(p.id, p.lat, p.lon) for p in snap.people] + [
        (d.id, d.lat, d.lon) for d in snap.depots
    ]
    if not origins or not snap.incidents:
        return snap
    minutes = travel_minutes(
        base,
        [o[0] for o in origins],
        [o[1] for o in origins],
        [o[2] for o in origins],
        [i.id for i in snap.incidents],
        [i.lat for i in snap.incidents],
        [i.lon for i in snap.incidents],
    ).astype(np.float64)
    scale = np.array([factors.get(i.id, 1.0) for i in snap.incidents])[:, None]
    minutes = np.round(minutes * scale, 3)
    matrix: dict[str, dict[str, float]] = {}
    inc_ids = [i.id for i in snap.incidents]
    for o, (oid, _, _) in enumerate(origins):
        col = minutes[:, o]
        keep = np.nonzero(col <= 1440.0)[0]
        if len(keep):
            matrix[oid] = {inc_ids[k]: float(col[k]) for k in keep}
    return snap.model_copy(update={"travel": base.model_copy(update={"matrix": matrix})})


def make_planner(policy: Policy, slowed: Mapping[str, float]) -> Planner:
    """A planner for :class:`~dispatch.services.engine.Engine` honouring ``slowed`` (jurisdiction
    path → road-factor multiplier, read at each re-plan) and ``policy``. Like the engine's own
    planner, it re-uses a group's previous plan when the group's input has not changed
    (:mod:`dispatch.solve_memo`); the slowed roads in force are part of that input."""
    memo = SolveMemo()

    def planner(
        world: planning.World, time_limit_s: float, seed: int
    ) -> list[planning.GroupResult]:
        memo.begin()
        areas = dict(slowed)
        factors: dict[str, float] = {}
        for inc in world.incidents:
            f = max((v for p, v in areas.items() if path_within(inc.path, p)), default=1.0)
            if f > 1.0:
                factors[inc.id] = f

        def solve_one(snapshot: dict[str, Any]) -> dict[str, Any]:
            snap = parse_snapshot(snapshot)
            if any(i.id in factors for i in snap.incidents):
                snap = with_area_factors(snap, factors)
            if policy == "greedy":
                return greedy_plan(snap, seed=seed).to_dict()
            return solve(snap, time_limit_s=time_limit_s, seed=seed).to_dict()

        def solve_group(snapshot: dict[str, Any]) -> dict[str, Any]:
            slow = tuple(
                (i["id"], factors[i["id"]]) for i in snapshot["incidents"] if i["id"] in factors
            )
            return memo.solve(snapshot, solve_one, (policy, time_limit_s, seed, slow))

        return planning.plan_world(world, solve_group)

    return planner
