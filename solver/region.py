"""The neighbourhood a minimum-crew repair re-optimises; everything else stays as planned.

Breaking a ``min`` is local: a short line is lifted with people from nearby lines or free
people, or closed so its people go nearby. So the repair (and CP-SAT) need only the short lines
plus, hop by hop, the lines holding their nearest candidates — while the arcs fit a budget.
People on the other lines keep the relaxed plan's line (a large-neighbourhood step). When every
arc fits, the region is the whole model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from solver.crew import top_arcs
from solver.people import Arcs, violated
from solver.problem import I32, NONE, Problem

__all__ = ["NEAR", "Region", "repair_region"]

NEAR = 4  # a region line pulls in the lines holding its capacity + NEAR nearest candidates
_MAX_HOPS = 8


@dataclass(frozen=True, slots=True)
class Region:
    """Lines to re-optimise, the arcs that may move people, and the frozen rest."""

    lines: npt.NDArray[np.bool_]
    arcs: Arcs  # into region lines, from people who are free or held by a region line
    capacity: I32  # slots left per line: the open capacity on region lines, 0 elsewhere
    base: I32  # the plan with region lines emptied (locked people stay)

    @property
    def whole(self) -> bool:
        """True when the region is every line."""
        return bool(self.lines.all())


def repair_region(problem: Problem, arcs: Arcs, plan: I32, budget: int) -> Region:
    """Short lines of ``plan`` grown hop by hop while the region's arcs fit ``budget``."""
    open_cap = np.where(problem.line_open, problem.capacity, 0).astype(np.int32)
    if len(arcs[0]) <= budget:
        return _region(problem, arcs, plan, np.ones(problem.n_lines, dtype=np.bool_), open_cap)
    lines = np.zeros(problem.n_lines, dtype=np.bool_)
    lines[violated(problem, plan)] = True
    near = top_arcs(problem, arcs, open_cap, NEAR)
    person, line, _ = arcs
    for _ in range(_MAX_HOPS):
        pulled = plan[person[near & lines[line]]]
        grown = lines.copy()
        grown[pulled[pulled >= 0]] = True
        if grown.sum() == lines.sum() or _arc_mask(arcs, plan, grown).sum() > budget:
            break
        lines = grown
    return _region(problem, arcs, plan, lines, open_cap)


def _region(
    problem: Problem, arcs: Arcs, plan: I32, lines: npt.NDArray[np.bool_], open_cap: I32
) -> Region:
    """The region of ``lines``: their movable arcs, and the plan with their people released."""
    keep = _arc_mask(arcs, plan, lines)
    base = plan.copy()
    held = (problem.fixed_line == NONE) & (plan >= 0) & _on(lines, plan)
    base[held] = NONE
    return Region(
        lines=lines,
        arcs=(arcs[0][keep], arcs[1][keep], arcs[2][keep]),
        capacity=np.where(lines, open_cap, 0).astype(np.int32),
        base=base,
    )


def _arc_mask(arcs: Arcs, plan: I32, lines: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Arcs into ``lines`` from people who are free or held by one of ``lines``."""
    person, line, _ = arcs
    where = plan[person]
    movable = (where == NONE) | _on(lines, where)
    return np.asarray(lines[line] & movable)


def _on(lines: npt.NDArray[np.bool_], assign: I32) -> npt.NDArray[np.bool_]:
    """``lines[assign]`` with unassigned (negative) entries mapping to False."""
    return np.asarray(np.append(lines, False)[np.where(assign >= 0, assign, len(lines))])
