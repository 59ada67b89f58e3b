"""Reasons: why this person for this slot, in words a coordinator can check.

Each pick states the person's rank among all eligible candidates by travel time and, when
closer candidates were passed over, where they went instead.
"""

from __future__ import annotations

import numpy as np

from solver.plan import Assignment, Change, Unmet
from solver.problem import I32, NONE, Problem

__all__ = ["explain"]

_SHOWN = 3  # passed-over candidates named per reason


def explain(problem: Problem, assign: I32) -> tuple[list[Assignment], list[Unmet]]:
    """Assignments with reasons, and the unmet people demand, in snapshot order."""
    out: list[Assignment] = []
    unmet: list[Unmet] = []
    pid, iid = problem.person_ids, problem.incident_ids
    order = np.lexsort((np.arange(len(assign)), assign))
    sorted_lines = assign[order]
    for line in range(problem.n_lines):
        a, b = np.searchsorted(sorted_lines, [line, line + 1])
        members = order[a:b]
        inc = int(problem.line_incident[line])
        skill = problem.line_skill[line]
        missing = int(problem.line_count[line]) - len(members)
        if missing > 0:
            unmet.append(Unmet(incident=iid[inc], skill=skill, missing=missing))
        if len(members) == 0:
            continue
        cands, _mins = problem.candidates(line)
        t = problem.minutes[inc, members]
        for p in members[np.lexsort((members, t))]:
            minutes = float(problem.minutes[inc, p])
            travel = round(minutes, 2) if np.isfinite(minutes) else None
            pos = np.flatnonzero(cands == p)
            rank = int(pos[0]) + 1 if len(pos) else 0
            change = _change(problem, int(p), line)
            reason = _reason(problem, assign, int(p), line, cands[: max(rank - 1, 0)], rank, change)
            out.append(
                Assignment(pid[p], iid[inc], skill, travel, rank, len(cands), change, reason)
            )
    return out, unmet


def _change(problem: Problem, person: int, line: int) -> Change:
    if problem.fixed_line[person] == line:
        return "locked"
    prev = int(problem.prev_line[person])
    if prev == line:
        return "kept"
    return "new" if prev == NONE else "moved"


def _where(problem: Problem, assign: I32, person: int) -> str:
    line = int(assign[person])
    if line < 0:
        return "left free"
    inc = problem.snapshot.incidents[int(problem.line_incident[line])]
    verb = "is locked to" if problem.fixed_line[person] == line else "went to"
    return f"{verb} {inc.id}/{problem.line_skill[line]} (priority {inc.priority})"


def _reason(
    problem: Problem,
    assign: I32,
    person: int,
    line: int,
    closer: I32,
    rank: int,
    change: str,
) -> str:
    inc = int(problem.line_incident[line])
    minutes = float(problem.minutes[inc, person])
    when = f"{minutes:.1f} min away" if np.isfinite(minutes) else "travel time unknown"
    if change == "locked":
        return f"locked: accepted or pinned by a coordinator, stays ({when})"
    n = int(problem.cand_ptr[line + 1] - problem.cand_ptr[line])
    head = f"closest of {n} eligible ({when})" if rank == 1 else f"#{rank} of {n} eligible ({when})"
    if change == "kept":
        head += "; already assigned here in the plan in force"
    elif change == "moved":
        head += f"; moved from the plan in force (+{problem.penalty:g} min penalty)"
    passed = closer[assign[closer] != line]
    if rank > 1 and len(passed) == 0:
        return head + "; every closer candidate is on this line too"
    if len(passed) == 0:
        return head
    named = "; ".join(
        f"{problem.person_ids[q]} ({float(problem.minutes[inc, q]):.1f} min) {_where(problem, assign, int(q))}"
        for q in passed[:_SHOWN]
    )
    more = f" and {len(passed) - _SHOWN} more" if len(passed) > _SHOWN else ""
    return f"{head}; passed over closer: {named}{more}"
