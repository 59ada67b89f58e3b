"""Re-use a group's plan when its solver input has not changed as the solver sees it. Pure.

Every re-plan solves every policy group again, but one change (an answer, an incident update)
usually touches one group; the others get the snapshot they got last time — except that the
``hours_left`` of people at work shrinks with every minute. The solver reads ``hours_left`` only
as "more than zero" (docs/snapshot.md: ``0`` means unavailable; a person needs
``hours_left > 0``), and it is deterministic: the same input and seed give the same plan,
``stats.seconds`` aside. So a snapshot equal to one solved in the previous re-plan, with every
``hours_left`` on the same side of zero, gets that plan back without solving.

The plan returned is the previous plan object itself (its ``stats.seconds`` is the earlier
solve's); callers treat plans as read-only. Only the previous re-plan's groups are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["SolveMemo", "same_solver_input"]

Snapshot = dict[str, Any]
Plan = dict[str, Any]


def same_solver_input(a: Snapshot, b: Snapshot) -> bool:
    """Whether the solver must give ``a`` and ``b`` the same plan (see the module docstring)."""
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        if k != "people" and v != b[k]:
            return False
    pa, pb = a.get("people", []), b.get("people", [])
    if pa == pb:
        return True
    if len(pa) != len(pb):
        return False
    for x, y in zip(pa, pb, strict=True):
        if x == y:
            continue
        if x.keys() != y.keys() or (x["hours_left"] > 0) != (y["hours_left"] > 0):
            return False
        if any(v != y[f] for f, v in x.items() if f != "hours_left"):
            return False
    return True


def _signature(snapshot: Snapshot, extra: Hashable) -> Hashable:
    incidents = tuple(i.get("id") for i in snapshot.get("incidents", []))
    return (incidents, len(snapshot.get("people", [])), extra)


class SolveMemo:
    """The plans of the previous re-plan's groups, by solver input.

    Call :meth:`begin` once per re-plan, then :meth:`solve` for each group. ``extra`` holds
    whatever else the solve depends on (time limit, seed, a drill's slowed roads, the policy).
    """

    def __init__(self) -> None:
        self._previous: dict[Hashable, list[tuple[Snapshot, Plan]]] = {}
        self._current: dict[Hashable, list[tuple[Snapshot, Plan]]] = {}
        self.hits = 0
        self.misses = 0

    def begin(self) -> None:
        """Start a re-plan: what was solved since the last call becomes the previous plan."""
        if self._current:
            self._previous, self._current = self._current, {}

    def solve(
        self, snapshot: Snapshot, solve: Callable[[Snapshot], Plan], extra: Hashable = None
    ) -> Plan:
        """``solve(snapshot)``, or the previous plan of an equivalent snapshot."""
        sig = _signature(snapshot, extra)
        for old, plan in self._previous.get(sig, []):
            if same_solver_input(snapshot, old):
                self.hits += 1
                self._current.setdefault(sig, []).append((snapshot, plan))
                return plan
        self.misses += 1
        plan = solve(snapshot)
        self._current.setdefault(sig, []).append((snapshot, plan))
        return plan
