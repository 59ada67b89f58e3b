"""Muster's solver: who and what goes where, across all open incidents at once.

Pure: no database, network, scheduler or clock. ``solve(snapshot, time_limit_s=..., seed=...)``
returns a :class:`Plan`; :func:`parse_snapshot` validates JSON input.
"""

from solver.plan import Allocation, Assignment, Objective, Plan, Stats, Unmet
from solver.snapshot import Snapshot, SnapshotError, parse_snapshot
from solver.solve import solve

__all__ = [
    "Allocation",
    "Assignment",
    "Objective",
    "Plan",
    "Snapshot",
    "SnapshotError",
    "Stats",
    "Unmet",
    "parse_snapshot",
    "solve",
]
