"""Upper bounds on covered weight, valid for the full candidate graph even after pruning.

Ignoring ``min``, covered weight is a maximum-weight b-matching of people to slots. The sets of
slots that can be filled at once form a (transversal) matroid, so the optimum equals
``Σ_k (w_k − w_{k+1}) × r(S_k)``, where ``S_k`` holds the slots of lines weighing at least
``w_k`` and ``r`` is the largest number of them fillable at once — a maximum flow, bounded by
any cut. For a set ``X`` of lines, ``r(S_k) ≤ Σ_{l ∈ X} free slots of l + #people eligible for
some line of S_k outside X``.

``X`` comes from the pruned flow plan: the lines reachable from an unassigned person along
alternating paths of the pruned graph (its minimum cut). The cut is then counted over every
eligible arc, pruned or not, so the bound holds whatever pruning dropped, and equals the true
optimum whenever pruning lost nothing that matters.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from solver.crew import line_bounds
from solver.people import Arcs
from solver.problem import I32, I64, NONE, Problem

__all__ = ["cut_bound", "line_bound"]

Mask = npt.NDArray[np.bool_]


def line_bound(problem: Problem) -> int:
    """Loose bound: each open line filled as far as its own candidates allow."""
    fill = np.minimum(problem.line_count, problem.line_fixed + problem.line_eligible_free)
    return int((problem.line_weight * np.where(problem.line_open, fill, 0)).sum())


def cut_bound(problem: Problem, pruned: Arcs, full: Arcs, assign: I32) -> int:
    """Bound from one certified cut per weight level.

    ``pruned`` are the arcs ``assign`` was optimised on (ignoring ``min``), ``full`` every free
    arc of an open line. Never above :func:`line_bound`, level by level.
    """
    capacity = np.where(problem.line_open, problem.capacity, 0).astype(np.int64)
    weight = problem.line_weight
    levels = sorted({int(w) for w in weight[capacity > 0]}, reverse=True)
    own = np.minimum(capacity, problem.line_eligible_free)
    ptr, lines = _by_person(problem, pruned)
    slices = line_bounds(problem, full)
    free = problem.fixed_line == NONE
    total = int((weight * problem.line_fixed).sum())
    for k, level in enumerate(levels):
        below = levels[k + 1] if k + 1 < len(levels) else 0
        in_s = (capacity > 0) & (weight >= level)
        held = np.where(free & (assign >= 0), assign, problem.n_lines)
        held = np.where(np.append(in_s, False)[held], held, problem.n_lines)
        side = _reachable_lines(ptr, lines, held, in_s)
        cut = int(capacity[side].sum()) + _people_touching(problem, full, slices, in_s & ~side)
        total += (level - below) * min(cut, int(own[in_s].sum()))
    return total


def _by_person(problem: Problem, arcs: Arcs) -> tuple[I64, I32]:
    """The arcs' lines grouped by person, CSR style: person p's are ``lines[ptr[p]:ptr[p+1]]``."""
    person, line, _ = arcs
    order = np.argsort(person)
    ptr = np.zeros(len(problem.person_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(person, minlength=len(problem.person_ids)), out=ptr[1:])
    return ptr, line[order]


def _reachable_lines(ptr: I64, lines: I32, held: I32, in_s: Mask) -> Mask:
    """Lines of ``in_s`` reachable from a person not ``held`` by an ``in_s`` line.

    ``held[p]`` is the ``in_s`` line person p fills, or ``n_lines``. Alternating breadth-first
    search: person → any of their lines → the people that line holds → ...
    """
    n_lines = len(in_s)
    side = np.zeros(n_lines + 1, dtype=np.bool_)
    frontier = np.flatnonzero(held == n_lines)
    while len(frontier):
        lens = ptr[frontier + 1] - ptr[frontier]
        starts = np.repeat(ptr[frontier] - np.cumsum(lens) + lens, lens)
        reached = lines[starts + np.arange(int(lens.sum()))]
        reached = np.unique(reached[in_s[reached] & ~side[reached]])
        fresh = np.zeros(n_lines + 1, dtype=np.bool_)
        fresh[reached] = True
        side[reached] = True
        frontier = np.flatnonzero(fresh[held])
    return side[:n_lines]


def _people_touching(problem: Problem, arcs: Arcs, bounds: I64, lines: Mask) -> int:
    """How many people have an arc into one of ``lines`` (a boolean mask); ``bounds`` are the
    arcs' per-line slices (:func:`solver.crew.line_bounds`)."""
    person = arcs[0]
    hit = np.zeros(len(problem.person_ids), dtype=np.bool_)
    for ln in np.flatnonzero(lines).tolist():
        hit[person[bounds[ln] : bounds[ln + 1]]] = True
    return int(hit.sum())
