"""Closest-available dispatch: the baseline every optimised plan must beat, and a fallback.

Incidents are handled one at a time, most urgent first (then in input order); each demand line
takes the nearest eligible people still free, as a dispatcher with a distance-sorted list
would. A line that cannot reach its minimum crew gets nobody.
"""

from __future__ import annotations

import numpy as np

from solver.people import base_assignment
from solver.problem import I32, NONE, Problem

__all__ = ["greedy_assign"]


def greedy_assign(problem: Problem) -> I32:
    """The closest-available plan (locked people stay where they are)."""
    assign = base_assignment(problem)
    free = problem.fixed_line == NONE
    priority = np.array([i.priority for i in problem.snapshot.incidents], dtype=np.int32)
    order = np.argsort(priority[problem.line_incident], kind="stable")
    capacity = problem.capacity
    for line in order:
        cap = int(capacity[line])
        if cap <= 0 or not problem.line_open[line]:
            continue
        cands, _ = problem.candidates(int(line))
        take = cands[free[cands]][:cap]
        if problem.line_fixed[line] == 0 and len(take) < problem.line_need[line]:
            continue
        assign[take] = line
        free[take] = False
    return assign
