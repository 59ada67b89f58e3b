"""Reasons: why this person for this slot, in words a coordinator can check.

Each pick states the person's rank among all eligible candidates by travel time and, when
closer candidates were passed over, where they went instead.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

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
    where: dict[int, str] = {}
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
        cands, cand_minutes = problem.candidates(line)
        t = problem.minutes[inc, members]
        members = members[np.lexsort((members, t))]
        ranks = _ranks(problem, line, members)
        # Closer candidates passed over: a prefix count, and the first few named.
        elsewhere = assign[cands[: int(ranks.max(initial=0))]] != line
        passed_before = np.concatenate([[0], np.cumsum(elsewhere)]).tolist()
        first = np.flatnonzero(elsewhere)[:_SHOWN]
        first_at = list(
            zip(first.tolist(), cands[first].tolist(), cand_minutes[first].tolist(), strict=True)
        )
        for p, rank, minutes in zip(
            members.tolist(), ranks.tolist(), problem.minutes[inc, members].tolist(), strict=True
        ):
            travel = round(minutes, 2) if math.isfinite(minutes) else None
            change = _change(problem, p, line)
            shown = [(q, m) for k, q, m in first_at if k < rank - 1]
            n_passed = passed_before[rank - 1] if rank > 1 else 0
            reason = _reason(problem, assign, minutes, line, rank, change, shown, n_passed, where)
            out.append(
                Assignment(pid[p], iid[inc], skill, travel, rank, len(cands), change, reason)
            )
    return out, unmet


def _ranks(problem: Problem, line: int, members: npt.NDArray[np.intp]) -> I32:
    """1-based position of each member in the line's candidate list (0 if not eligible).

    Candidates are sorted by (minutes, person index), so a binary search on minutes finds the
    block of equal times and a second one on the person index the exact position.
    """
    cands, mins = problem.candidates(line)
    if len(cands) == 0:
        return np.zeros(len(members), dtype=np.int32)
    t = problem.minutes[int(problem.line_incident[line]), members]
    lo = np.searchsorted(mins, t, side="left")
    hi = np.searchsorted(mins, t, side="right")
    single = (hi - lo == 1) & (cands[np.minimum(lo, len(cands) - 1)] == members)
    ranks = np.where(single, lo + 1, 0).astype(np.int32)
    for k in np.flatnonzero(hi - lo > 1).tolist():
        block = cands[lo[k] : hi[k]]
        j = int(np.searchsorted(block, members[k]))
        if j < len(block) and block[j] == members[k]:
            ranks[k] = int(lo[k]) + j + 1
    return ranks


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
    minutes: float,
    line: int,
    rank: int,
    change: str,
    shown: list[tuple[int, float]],
    n_passed: int,
    where: dict[int, str],
) -> str:
    """The sentence for one pick ``minutes`` away; ``shown`` are the first closer candidates
    passed over, with their minutes (of ``n_passed``); ``where`` caches where people went."""
    when = f"{minutes:.1f} min away" if math.isfinite(minutes) else "travel time unknown"
    if change == "locked":
        return f"locked: accepted or pinned by a coordinator, stays ({when})"
    n = int(problem.cand_ptr[line + 1] - problem.cand_ptr[line])
    head = f"closest of {n} eligible ({when})" if rank == 1 else f"#{rank} of {n} eligible ({when})"
    if change == "kept":
        head += "; already assigned here in the plan in force"
    elif change == "moved":
        head += f"; moved from the plan in force (+{problem.penalty:g} min penalty)"
    if rank > 1 and n_passed == 0:
        return head + "; every closer candidate is on this line too"
    if n_passed == 0:
        return head
    for q, _ in shown:
        if q not in where:
            where[q] = _where(problem, assign, q)
    named = "; ".join(f"{problem.person_ids[q]} ({m:.1f} min) {where[q]}" for q, m in shown)
    more = f" and {n_passed - _SHOWN} more" if n_passed > _SHOWN else ""
    return f"{head}; passed over closer: {named}{more}"
