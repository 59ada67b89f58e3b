"""After-action figures, computed purely from what a drill recorded. No I/O, no wall clock.

Every time is in simulated seconds after the scenario start. "Committed" means an assignment
that was accepted and not yet released, cancelled or withdrawn; a demand slot is "staffed" by an
accepted offer. Coverage and unmet demand are sampled every ``step_s`` simulated seconds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from drills.scenario import Objective

__all__ = [
    "AssignmentRec",
    "IncidentRec",
    "Recorded",
    "compute",
    "gini",
    "jain",
    "nearest_rank",
    "summary_stats",
]


@dataclass
class IncidentRec:
    """An incident as the drill saw it: demand history as ``(t, {skill: count})``."""

    id: str
    priority: int
    jurisdiction: str
    reported_s: float
    closed_s: float | None = None
    demand: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    supplies: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    priorities: list[tuple[float, int]] = field(default_factory=list)

    def demand_at(self, t: float) -> dict[str, int]:
        current: dict[str, int] = {}
        for at, d in self.demand:
            if at <= t:
                current = d
        return current

    def open_at(self, t: float) -> bool:
        return self.reported_s <= t and (self.closed_s is None or t < self.closed_s)


@dataclass(frozen=True)
class AssignmentRec:
    """One assignment with its lifecycle times (``None`` when the step never happened)."""

    person: str
    incident: str
    skill: str
    status: str
    offered_s: float | None
    accepted_s: float | None
    declined_s: float | None
    expired_s: float | None
    en_route_s: float | None
    on_scene_s: float | None
    released_s: float | None
    withdrawn_s: float | None
    cancelled_s: float | None

    @property
    def committed_until(self) -> float | None:
        ends = [t for t in (self.released_s, self.cancelled_s, self.withdrawn_s) if t is not None]
        return min(ends) if ends else None


@dataclass
class Recorded:
    """Everything a drill run recorded, ready for :func:`compute`."""

    end_s: float
    step_s: float
    incidents: list[IncidentRec]
    assignments: list[AssignmentRec]
    allocations: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    injects: list[dict[str, Any]]
    final_unmet: list[dict[str, Any]]
    responders: dict[str, int]
    objectives: list[Objective]


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(float(x), nd)


def nearest_rank(sorted_values: Sequence[float], p: float) -> float:
    """The ``p`` percentile (0 < p ≤ 1) of non-empty, sorted values, by nearest rank."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def summary_stats(values: Iterable[float]) -> dict[str, Any]:
    """Count, median, 90th percentile, mean and max (nearest-rank percentiles)."""
    v = sorted(values)
    if not v:
        return {"n": 0, "median": None, "p90": None, "mean": None, "max": None}
    return {
        "n": len(v),
        "median": _r(nearest_rank(v, 0.5)),
        "p90": _r(nearest_rank(v, 0.9)),
        "mean": _r(sum(v) / len(v)),
        "max": _r(v[-1]),
    }


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index: 1 when everyone carries the same load, 1/n when one carries all."""
    sq = sum(x * x for x in values)
    return None if not values or sq == 0 else round(sum(values) ** 2 / (len(values) * sq), 4)


def gini(values: Sequence[float]) -> float | None:
    """Gini coefficient: 0 for equal loads, towards 1 when one person carries all."""
    v = sorted(values)
    n, total = len(v), sum(v)
    if n == 0 or total == 0:
        return None
    cum = sum((k + 1) * x for k, x in enumerate(v))
    return round((2 * cum) / (n * total) - (n + 1) / n, 4)


def _committed(asgs: list[AssignmentRec], t: float) -> int:
    n = 0
    for a in asgs:
        if a.accepted_s is not None and a.accepted_s <= t:
            until = a.committed_until
            if until is None or t < until:
                n += 1
    return n


def _incident_figures(
    inc: IncidentRec, asgs: list[AssignmentRec], allocs: list[dict[str, Any]], end_s: float
) -> dict[str, Any]:
    offers = [a.offered_s for a in asgs if a.offered_s is not None]
    first_offer = min(offers) - inc.reported_s if offers else None
    by_line: dict[str, list[AssignmentRec]] = defaultdict(list)
    for a in asgs:
        by_line[a.skill].append(a)
    # Full staffing: the first event time at which every demand line is committed in full.
    full: float | None = None
    stop = inc.closed_s if inc.closed_s is not None else end_s
    times = sorted(
        {t for a in asgs for t in (a.accepted_s,) if t is not None} | {t for t, _ in inc.demand}
    )
    for t in times:
        if t < inc.reported_s or t > stop:
            continue
        need = {k: c for k, c in inc.demand_at(t).items() if c > 0}
        if need and all(_committed(by_line[k], t) >= c for k, c in need.items()):
            full = t - inc.reported_s
            break
    initial = inc.demand[0][1] if inc.demand else {}
    slots = sum(initial.values())
    fill_times: list[float] = []  # time to the k-th acceptance of each initial slot
    for skill, count in sorted(initial.items()):
        acc = sorted(a.accepted_s for a in by_line[skill] if a.accepted_s is not None)
        fill_times += [t - inc.reported_s for t in acc[:count]]
    requested = inc.supplies[0][1] if inc.supplies else {}
    reserved_at: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for al in allocs:
        reserved_at[al["item"]].append((al["reserved_s"], int(al["quantity"])))
    return {
        "id": inc.id,
        "priority": inc.priority,
        "jurisdiction": inc.jurisdiction,
        "reported_s": _r(inc.reported_s),
        "closed_s": _r(inc.closed_s),
        "people_slots": slots,
        "slots_staffed": len(fill_times),
        "first_offer_s": _r(first_offer),
        "full_staffing_s": _r(full),
        "offers": len(offers),
        "declined": sum(1 for a in asgs if a.status == "declined"),
        "expired": sum(1 for a in asgs if a.status == "expired"),
        "_fill_times": fill_times,
        "_requested": dict(requested),
        "_reserved": {k: sorted(v) for k, v in reserved_at.items()},
    }


def _coverage(
    incidents: list[IncidentRec],
    by_incident: dict[str, list[AssignmentRec]],
    end_s: float,
    step_s: float,
) -> tuple[list[float], dict[str, list[float | None]], dict[str, float]]:
    """Covered share of people demand per priority at each sample, and unmet slot-hours by skill."""
    samples = [k * step_s for k in range(int(end_s // step_s) + 1)]
    shares: dict[str, list[float | None]] = {str(p): [] for p in range(1, 6)}
    unmet_hours: dict[str, float] = defaultdict(float)
    lines = {
        inc.id: {
            skill: [a for a in by_incident.get(inc.id, []) if a.skill == skill]
            for _, d in inc.demand
            for skill in d
        }
        for inc in incidents
    }
    for t in samples:
        need = Counter[int]()
        have = Counter[int]()
        for inc in incidents:
            if not inc.open_at(t):
                continue
            prio = inc.priority
            for at, p in inc.priorities:
                if at <= t:
                    prio = p
            for skill, count in inc.demand_at(t).items():
                got = min(count, _committed(lines[inc.id].get(skill, []), t))
                need[prio] += count
                have[prio] += got
                unmet_hours[skill] += (count - got) * step_s / 3600.0
        for p in range(1, 6):
            shares[str(p)].append(round(have[p] / need[p], 4) if need[p] else None)
    return samples, shares, {k: round(v, 2) for k, v in sorted(unmet_hours.items()) if v > 0}


def _objective(o: Objective, figures: dict[str, Any], incs: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = [i for i in incs if o.priority is None or i["priority"] == o.priority]
    measured: float | None
    if o.metric == "staffed_within":
        assert o.minutes is not None
        slots = sum(i["people_slots"] for i in chosen)
        ok = sum(1 for i in chosen for t in i["_fill_times"] if t <= o.minutes * 60)
        measured = ok / slots if slots else None
    elif o.metric == "first_offer_within":
        assert o.minutes is not None
        with_people = [i for i in chosen if i["people_slots"] > 0]
        ok = sum(
            1
            for i in with_people
            if i["first_offer_s"] is not None and i["first_offer_s"] <= o.minutes * 60
        )
        measured = ok / len(with_people) if with_people else None
    elif o.metric == "supplied_within":
        assert o.minutes is not None
        total = sum(sum(i["_requested"].values()) for i in chosen)
        got = 0
        for i in chosen:
            for item, q in i["_requested"].items():
                limit = i["reported_s"] + o.minutes * 60
                got += min(q, sum(n for t, n in i["_reserved"].get(item, []) if t <= limit))
        measured = got / total if total else None
    elif o.metric == "expiry_rate_at_most":
        measured = figures["offers"]["expiry_rate"]
    elif o.metric == "decline_rate_at_most":
        measured = figures["offers"]["decline_rate"]
    else:
        measured = figures["load"]["jain_hours"]
    if measured is None:
        met = None
    elif o.metric in ("staffed_within", "first_offer_within", "supplied_within"):
        assert o.share is not None
        met = measured >= o.share
    elif o.metric == "fairness_at_least":
        assert o.value is not None
        met = measured >= o.value
    else:
        assert o.value is not None
        met = measured <= o.value
    return {
        **o.model_dump(exclude_none=True),
        "text": o.text(),
        "measured": _r(measured, 4),
        "met": met,
    }


def compute(rec: Recorded) -> dict[str, Any]:
    """All after-action figures (JSON-ready, deterministic for the same records)."""
    by_incident: dict[str, list[AssignmentRec]] = defaultdict(list)
    for a in rec.assignments:
        by_incident[a.incident].append(a)
    allocs_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for al in rec.allocations:
        allocs_by[al["incident"]].append(al)
    incs = [
        _incident_figures(i, by_incident.get(i.id, []), allocs_by.get(i.id, []), rec.end_s)
        for i in sorted(rec.incidents, key=lambda i: (i.reported_s, i.id))
    ]

    by_priority: dict[str, Any] = {}
    for p in sorted({i["priority"] for i in incs}):
        mine = [i for i in incs if i["priority"] == p]
        staffed = [i for i in mine if i["people_slots"] > 0]
        by_priority[str(p)] = {
            "incidents": len(mine),
            "people_slots": sum(i["people_slots"] for i in mine),
            "first_offer_s": summary_stats(
                i["first_offer_s"] for i in mine if i["first_offer_s"] is not None
            ),
            "full_staffing_s": summary_stats(
                i["full_staffing_s"] for i in staffed if i["full_staffing_s"] is not None
            ),
            "never_fully_staffed": sum(1 for i in staffed if i["full_staffing_s"] is None),
        }

    offered = [a for a in rec.assignments if a.offered_s is not None]
    n = len(offered)
    count = Counter(a.status for a in offered)
    accepted = sum(1 for a in offered if a.accepted_s is not None)
    answers = [
        (a.accepted_s if a.accepted_s is not None else a.declined_s) - a.offered_s  # type: ignore[operator]
        for a in offered
        if a.accepted_s is not None or a.declined_s is not None
    ]
    offers = {
        "count": n,
        "accepted": accepted,
        "declined": count["declined"],
        "expired": count["expired"],
        "withdrawn_unanswered": sum(
            1 for a in offered if a.status == "withdrawn" and a.accepted_s is None
        ),
        "accept_rate": _r(accepted / n, 4) if n else None,
        "decline_rate": _r(count["declined"] / n, 4) if n else None,
        "expiry_rate": _r(count["expired"] / n, 4) if n else None,
        "answer_s": summary_stats(answers),
        "responders": dict(sorted(rec.responders.items())),
    }

    hours: dict[str, float] = defaultdict(float)
    jobs: Counter[str] = Counter()
    for a in rec.assignments:
        if a.accepted_s is None:
            continue
        start = a.en_route_s if a.en_route_s is not None else a.accepted_s
        stop = a.committed_until if a.committed_until is not None else rec.end_s
        hours[a.person] += max(0.0, stop - start) / 3600.0
        jobs[a.person] += 1
    loads = [hours[p] for p in sorted(hours)]
    top = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    load = {
        "people_deployed": len(hours),
        "hours": summary_stats(loads),
        "total_hours": _r(sum(loads), 2),
        "assignments_per_person": summary_stats(float(jobs[p]) for p in sorted(jobs)),
        "jain_hours": jain(loads),
        "gini_hours": gini(loads),
        "most_loaded": [
            {"person": p, "hours": round(h, 2), "assignments": jobs[p]} for p, h in top
        ],
        "_hours": [round(h, 3) for h in loads],
    }

    samples, shares, unmet_hours = _coverage(rec.incidents, by_incident, rec.end_s, rec.step_s)
    unmet_skill: Counter[str] = Counter()
    unmet_item: Counter[str] = Counter()
    for u in rec.final_unmet:
        if u.get("skill"):
            unmet_skill[u["skill"]] += int(u["missing"])
        if u.get("item"):
            unmet_item[u["item"]] += int(u["missing"])
    items: dict[str, dict[str, int]] = {}
    for i in incs:
        for item, q in i["_requested"].items():
            got = min(q, sum(n for _, n in i["_reserved"].get(item, [])))
            e = items.setdefault(item, {"requested": 0, "reserved": 0, "short": 0})
            e["requested"] += q
            e["reserved"] += got
            e["short"] += q - got
    unmet = {
        "slot_hours_by_skill": unmet_hours,
        "in_last_plan_by_skill": dict(sorted(unmet_skill.items())),
        "in_last_plan_by_item": dict(sorted(unmet_item.items())),
        "items": dict(sorted(items.items())),
    }

    triggers = Counter(
        "cadence" if p["trigger"] == "cadence" else "event-driven" for p in rec.plans
    )
    replans = {
        "count": len(rec.plans),
        "by_trigger": dict(sorted(triggers.items())),
        "by_method": dict(sorted(Counter(p["method"] for p in rec.plans).items())),
        "offers_made": sum(p["offers"] for p in rec.plans),
        "offers_withdrawn": sum(p["withdrawn"] for p in rec.plans),
        "allocations_made": sum(p["allocations"] for p in rec.plans),
        "durations": "wall-clock; see run.json and the HTML report",
    }
    kinds = Counter(m["kind"] for m in rec.messages)
    messages = {
        "count": len(rec.messages),
        "by_kind": dict(sorted(kinds.items())),
        "exercise_marked": sum(1 for m in rec.messages if m["exercise"]),
        "not_exercise_marked": sum(1 for m in rec.messages if not m["exercise"]),
    }
    figures: dict[str, Any] = {"offers": offers, "load": load}
    objectives = [_objective(o, figures, incs) for o in rec.objectives]
    public_incs = [{k: v for k, v in i.items() if not k.startswith("_")} for i in incs]
    slots = sum(i["people_slots"] for i in incs)
    return {
        "summary": {
            "incidents": len(incs),
            "people_slots": slots,
            "slots_staffed": sum(i["slots_staffed"] for i in incs),
            "offers": n,
            "accept_rate": offers["accept_rate"],
            "expiry_rate": offers["expiry_rate"],
            "median_first_offer_s": summary_stats(
                i["first_offer_s"] for i in incs if i["first_offer_s"] is not None
            )["median"],
            "median_full_staffing_s": summary_stats(
                i["full_staffing_s"] for i in incs if i["full_staffing_s"] is not None
            )["median"],
            "people_deployed": load["people_deployed"],
            "jain_hours": load["jain_hours"],
            "replans": len(rec.plans),
            "messages": len(rec.messages),
            "objectives_met": sum(1 for o in objectives if o["met"]),
            "objectives": len(objectives),
        },
        "by_priority": by_priority,
        "incidents": public_incs,
        "offers": offers,
        "coverage": {"step_s": rec.step_s, "t_s": samples, "by_priority": shares},
        "unmet": unmet,
        "load": {k: v for k, v in load.items() if not k.startswith("_")},
        "load_hours": load["_hours"],
        "replans": replans,
        "messages": messages,
        "objectives": objectives,
        "injects": rec.injects,
    }
