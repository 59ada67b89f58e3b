"""The snapshot compiled into numpy arrays: demand lines, travel, eligibility and candidates.

Everything downstream (flow, CP-SAT, greedy, explanations) works on integer indices into these
arrays. Candidate lists are built once, per demand line, sorted by travel time, so pruning is a
slice and "rank among eligible candidates" is a position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.snapshot import Snapshot
from solver.travel import travel_minutes

__all__ = ["NONE", "Problem", "Score", "compile_problem", "score"]

NONE = -1  # "no line" in per-person arrays
GONE = -2  # a previous (unlocked) assignment whose line no longer exists

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Score:
    """A people plan's objective: covered weight first, then penalised travel minutes."""

    covered: int
    travel: float
    reassignments: int
    penalised: float

    def better_than(self, other: Score) -> bool:
        """Strictly better in (covered weight ↑, penalised minutes ↓) order."""
        if self.covered != other.covered:
            return self.covered > other.covered
        return self.penalised < other.penalised - 1e-6


@dataclass(frozen=True, slots=True)
class Problem:
    """Compiled people problem; ``line_*`` arrays are indexed by demand line."""

    snapshot: Snapshot
    person_ids: list[str]
    incident_ids: list[str]
    minutes: npt.NDArray[np.float32]  # (incidents, people)
    line_incident: I32
    line_skill: list[str]
    line_count: I32
    line_need: I32  # effective min: 1 when the line holds a locked person
    line_weight: I64
    line_fixed: I32  # locked people on the line
    line_open: npt.NDArray[np.bool_]  # False when the line can never reach its min
    line_eligible_free: I64  # eligible candidates who are not locked anywhere
    fixed_line: I32  # per person: the line they are locked to, or NONE
    prev_line: I32  # per person: their unlocked previous line, NONE or GONE
    cand_ptr: I64  # candidates of line l are cand_person[cand_ptr[l]:cand_ptr[l+1]]
    cand_person: I32
    cand_minutes: npt.NDArray[np.float32]
    penalty: float

    @property
    def n_lines(self) -> int:
        """Number of demand lines."""
        return len(self.line_skill)

    @property
    def capacity(self) -> I32:
        """Slots per line still open to the optimiser (count minus locked people)."""
        return (self.line_count - self.line_fixed).astype(np.int32)

    def candidates(self, line: int) -> tuple[I32, npt.NDArray[np.float32]]:
        """Eligible people for ``line`` (skill, hours, reach, not forbidden), nearest first."""
        a, b = self.cand_ptr[line], self.cand_ptr[line + 1]
        return self.cand_person[a:b], self.cand_minutes[a:b]

    def free_arcs(self) -> tuple[I32, I32, npt.NDArray[np.float32]]:
        """All (person, line, minutes) arcs of open lines, excluding locked people."""
        line = np.repeat(np.arange(self.n_lines, dtype=np.int32), np.diff(self.cand_ptr))
        keep = (self.fixed_line[self.cand_person] == NONE) & self.line_open[line]
        return self.cand_person[keep], line[keep], self.cand_minutes[keep]


def compile_problem(snap: Snapshot) -> Problem:
    """Turn a validated snapshot into arrays and per-line candidate lists."""
    people, incidents = snap.people, snap.incidents
    pid = {p.id: k for k, p in enumerate(people)}
    iid = {i.id: k for k, i in enumerate(incidents)}
    minutes = travel_minutes(
        snap.travel,
        [p.id for p in people],
        [p.lat for p in people],
        [p.lon for p in people],
        [i.id for i in incidents],
        [i.lat for i in incidents],
        [i.lon for i in incidents],
    )
    line_incident: list[int] = []
    line_skill: list[str] = []
    count: list[int] = []
    mins: list[int] = []
    weight: list[int] = []
    line_of: dict[tuple[int, str], int] = {}
    for k, inc in enumerate(incidents):
        for dem in inc.demands:
            line_of[(k, dem.skill)] = len(line_skill)
            line_incident.append(k)
            line_skill.append(dem.skill)
            count.append(dem.count)
            mins.append(dem.min)
            weight.append(snap.weight(inc.priority))
    n_people, n_lines = len(people), len(line_skill)
    fixed_line = np.full(n_people, NONE, dtype=np.int32)
    prev_line = np.full(n_people, NONE, dtype=np.int32)
    line_fixed = np.zeros(n_lines, dtype=np.int32)
    for prev in snap.previous:
        line = line_of.get((iid[prev.incident], prev.skill), GONE)
        if prev.fixed:
            fixed_line[pid[prev.person]] = line
            line_fixed[line] += 1
        else:
            prev_line[pid[prev.person]] = line
    cand_ptr, cand_person, cand_minutes = _candidates(
        snap, minutes, np.asarray(line_incident, dtype=np.int32), line_skill, iid, pid
    )
    # Eligible minus locked candidates per line (locked people are few; avoid a long cumsum).
    locked_at = np.flatnonzero(fixed_line[cand_person] != NONE)
    locked_per_line = np.bincount(
        np.searchsorted(cand_ptr, locked_at, side="right") - 1, minlength=n_lines
    )
    free_eligible = np.diff(cand_ptr) - locked_per_line
    need = np.where(line_fixed > 0, 1, np.asarray(mins, dtype=np.int32)).astype(np.int32)
    line_open = (line_fixed > 0) | (free_eligible >= need)
    return Problem(
        snapshot=snap,
        person_ids=[p.id for p in people],
        incident_ids=[i.id for i in incidents],
        minutes=minutes,
        line_incident=np.asarray(line_incident, dtype=np.int32),
        line_skill=line_skill,
        line_count=np.asarray(count, dtype=np.int32),
        line_need=need,
        line_weight=np.asarray(weight, dtype=np.int64),
        line_fixed=line_fixed,
        line_open=np.asarray(line_open, dtype=np.bool_),
        line_eligible_free=free_eligible.astype(np.int64),
        fixed_line=fixed_line,
        prev_line=prev_line,
        cand_ptr=cand_ptr,
        cand_person=cand_person,
        cand_minutes=cand_minutes,
        penalty=snap.reassign_penalty_minutes,
    )


def _candidates(
    snap: Snapshot,
    minutes: npt.NDArray[np.float32],
    line_incident: I32,
    line_skill: list[str],
    iid: dict[str, int],
    pid: dict[str, int],
) -> tuple[I64, I32, npt.NDArray[np.float32]]:
    """Per line, the eligible people sorted by (minutes, input order)."""
    people = snap.people
    available = np.array([p.hours_left > 0 for p in people], dtype=np.bool_)
    skill_ok: dict[str, npt.NDArray[np.bool_]] = {}
    for skill in set(line_skill):
        has = np.array([skill in p.skills for p in people], dtype=np.bool_)
        skill_ok[skill] = has & available
    forbidden = {iid[i.id]: [pid[p] for p in i.forbidden] for i in snap.incidents if i.forbidden}
    reach = np.float32(snap.travel.max_minutes)
    ptr = np.zeros(len(line_skill) + 1, dtype=np.int64)
    persons: list[I32] = []
    mins: list[npt.NDArray[np.float32]] = []
    for line, skill in enumerate(line_skill):
        inc = int(line_incident[line])
        row = minutes[inc]
        mask = skill_ok[skill] & (row <= reach)
        if inc in forbidden:
            mask[forbidden[inc]] = False
        idx = np.flatnonzero(mask).astype(np.int32)
        order = _by_minutes(row[idx])
        persons.append(idx[order])
        mins.append(row[idx[order]])
        ptr[line + 1] = ptr[line] + len(idx)
    if not persons:
        return ptr, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    return ptr, np.concatenate(persons), np.concatenate(mins)


def _by_minutes(t: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """Stable ascending order of non-negative minutes, ties in input order.

    Non-negative IEEE floats order like their bit patterns, so one unsigned 64-bit key per entry
    (minutes bits, then position) sorts with numpy's fast unstable sort, several times faster
    than a stable argsort of floats.
    """
    bits = (t + np.float32(0.0)).view(np.uint32).astype(np.uint64)  # + 0.0 turns -0.0 into 0.0
    keys = np.sort((bits << np.uint64(32)) | np.arange(len(t), dtype=np.uint64))
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)


def score(problem: Problem, assign: I32) -> Score:
    """Objective of a full assignment (``assign[p]`` = line or NONE, locked people included)."""
    who = np.flatnonzero(assign >= 0)
    lines = assign[who]
    covered = int(problem.line_weight[lines].sum())
    t = problem.minutes[problem.line_incident[lines], who].astype(np.float64)
    travel = float(t[np.isfinite(t)].sum())
    moved = (problem.prev_line != NONE) & (assign != problem.prev_line)
    reassignments = int(moved.sum())
    return Score(covered, travel, reassignments, travel + reassignments * problem.penalty)
