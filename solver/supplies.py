"""Supplies: one transportation problem per item, solved exactly as a min-cost flow.

source → depot (cap stock) → incident (cost per unit) → sink (cap demand), plus a zero-cost
bypass. Per unit the cost is ``-(weight × BIG) + minutes × scale``: deliver as much priority-
weighted quantity as possible, then move it the shortest way. Stock is never exceeded and
nothing is over-delivered, by construction of the capacities. People's ``max_minutes`` does not
apply to deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from solver.plan import Allocation, Unmet
from solver.snapshot import Snapshot
from solver.travel import travel_minutes

__all__ = ["SupplyResult", "solve_supplies"]

_LIMIT = 2**61


@dataclass(frozen=True, slots=True)
class SupplyResult:
    """Allocations, unmet supply demand, and the supply objective."""

    allocations: list[Allocation]
    unmet: list[Unmet]
    weighted_units: int
    unit_minutes: float


def solve_supplies(snap: Snapshot) -> SupplyResult:
    """Optimal allocation of every item from depots to incidents."""
    items = sorted({item for inc in snap.incidents for item, q in inc.supplies.items() if q > 0})
    allocations: list[Allocation] = []
    unmet: list[Unmet] = []
    if not items:
        return SupplyResult([], [], 0, 0.0)
    minutes = travel_minutes(
        snap.travel,
        [d.id for d in snap.depots],
        [d.lat for d in snap.depots],
        [d.lon for d in snap.depots],
        [i.id for i in snap.incidents],
        [i.lat for i in snap.incidents],
        [i.lon for i in snap.incidents],
    ).astype(np.float64)
    weight = np.array([snap.weight(i.priority) for i in snap.incidents], dtype=np.int64)
    delivered: dict[tuple[int, str], int] = {}
    for item in items:
        for inc, dep, qty in _solve_item(snap, item, minutes, weight):
            delivered[(inc, item)] = delivered.get((inc, item), 0) + qty
            allocations.append(
                Allocation(
                    depot=snap.depots[dep].id,
                    incident=snap.incidents[inc].id,
                    item=item,
                    quantity=qty,
                    travel_minutes=round(float(minutes[inc, dep]), 2),
                )
            )
    for k, incident in enumerate(snap.incidents):
        for item, want in incident.supplies.items():
            missing = want - delivered.get((k, item), 0)
            if missing > 0:
                unmet.append(Unmet(incident=incident.id, item=item, missing=missing))
    index = {i.id: k for k, i in enumerate(snap.incidents)}
    weighted = sum(int(weight[index[a.incident]]) * a.quantity for a in allocations)
    unit_minutes = sum(a.quantity * a.travel_minutes for a in allocations)
    allocations.sort(key=lambda a: (index[a.incident], a.item, a.travel_minutes, a.depot))
    return SupplyResult(allocations, unmet, weighted, round(unit_minutes, 2))


def _solve_item(
    snap: Snapshot, item: str, minutes: np.ndarray, weight: np.ndarray
) -> list[tuple[int, int, int]]:
    """(incident, depot, quantity) triples for one item."""
    stock = np.array([d.stock.get(item, 0) for d in snap.depots], dtype=np.int64)
    demand = np.array([i.supplies.get(item, 0) for i in snap.incidents], dtype=np.int64)
    deps, incs = np.flatnonzero(stock > 0), np.flatnonzero(demand > 0)
    if len(deps) == 0 or len(incs) == 0:
        return []
    sub = minutes[np.ix_(incs, deps)]
    ii, dd = np.nonzero(np.isfinite(sub))
    if len(ii) == 0:
        return []
    units = int(min(stock[deps].sum(), demand[incs].sum()))
    tmax = float(sub[ii, dd].max()) + 1.0
    wmax = int(weight.max()) + 1
    n_nodes = len(deps) + len(incs) + 2
    scale = 100.0
    while scale > 1e-6 and wmax * (units * tmax * scale + 2) * n_nodes * 4 > _LIMIT:
        scale /= 10
    big = int(units * tmax * scale) + 2
    cost = np.rint(sub[ii, dd] * scale).astype(np.int64) - weight[incs[ii]] * big
    src, sink, d0, i0 = 0, 1, 2, 2 + len(deps)
    tails = np.concatenate([np.zeros(len(deps), np.int64), d0 + dd, i0 + np.arange(len(incs)), [0]])
    heads = np.concatenate(
        [d0 + np.arange(len(deps)), i0 + ii, np.full(len(incs), sink, np.int64), [sink]]
    )
    caps = np.concatenate(
        [stock[deps], np.minimum(stock[deps][dd], demand[incs][ii]), demand[incs], [units]]
    )
    costs = np.concatenate([np.zeros(len(deps), np.int64), cost, np.zeros(len(incs) + 1, np.int64)])
    smcf = min_cost_flow.SimpleMinCostFlow()
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    smcf.set_node_supply(src, units)
    smcf.set_node_supply(sink, -units)
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"supply flow for {item!r} failed with status {status}")
    flows = smcf.flows(np.arange(len(deps), len(deps) + len(ii)))
    return [(int(incs[ii[k]]), int(deps[dd[k]]), int(flows[k])) for k in np.flatnonzero(flows > 0)]
