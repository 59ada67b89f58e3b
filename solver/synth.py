"""Seeded synthetic cities for the benchmark and the tests.

People live in clustered neighbourhoods with a realistic skill mix; incidents happen near where
people are, with mixed priorities and demands; depots hold a few item types. Optionally some
demand lines need a minimum crew, and part of a plan in force is locked or merely previous.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SKILLS", "synthetic_city"]

CENTER = (31.23, 121.47)
KM_PER_DEG = 111.195
# skill: (share of people holding it, share of demand lines asking for it)
SKILLS: dict[str, tuple[float, float]] = {
    "first_aid": (0.30, 0.28),
    "driver": (0.25, 0.18),
    "search_rescue": (0.10, 0.18),
    "nurse": (0.06, 0.10),
    "logistics": (0.20, 0.14),
    "electrician": (0.06, 0.07),
    "translator": (0.05, 0.05),
}
ITEMS = ["water_l", "food_kit", "blanket", "mask", "generator"]


def _points(rng: np.random.Generator, centres: np.ndarray, n: int, sigma_km: float) -> np.ndarray:
    pick = rng.integers(0, len(centres), n)
    km = centres[pick] + rng.normal(0.0, sigma_km, (n, 2))
    lat = CENTER[0] + km[:, 0] / KM_PER_DEG
    lon = CENTER[1] + km[:, 1] / (KM_PER_DEG * np.cos(np.radians(CENTER[0])))
    return np.round(np.column_stack([lat, lon]), 6)


def synthetic_city(
    n_people: int,
    n_incidents: int,
    *,
    seed: int = 0,
    min_crew: bool = False,
    locks: bool = False,
    radius_km: float = 14.0,
    load: float = 1.0,
) -> dict[str, Any]:
    """A snapshot as decoded JSON (feed it to :func:`solver.parse_snapshot`).

    ``load`` scales the people asked for per demand line (2-3 makes some skills scarce).
    """
    rng = np.random.default_rng(seed)
    n_clusters = max(4, n_people // 400)
    r = radius_km * np.sqrt(rng.random(n_clusters))
    a = rng.random(n_clusters) * 2 * np.pi
    centres = np.column_stack([r * np.cos(a), r * np.sin(a)])
    names = list(SKILLS)
    hold = np.array([SKILLS[s][0] for s in names])
    ask = np.array([SKILLS[s][1] for s in names])
    ask = ask / ask.sum()
    pos = _points(rng, centres, n_people, 2.5)
    has = rng.random((n_people, len(names))) < hold
    has[~has.any(axis=1), 0] = True
    hours = np.where(rng.random(n_people) < 0.1, 0, rng.integers(1, 9, n_people))
    people = [
        {
            "id": f"p{k}",
            "lat": float(pos[k, 0]),
            "lon": float(pos[k, 1]),
            "skills": [names[j] for j in np.flatnonzero(has[k])],
            "hours_left": int(hours[k]),
        }
        for k in range(n_people)
    ]
    ipos = _points(rng, centres, n_incidents, 4.0)
    prio = rng.choice([1, 2, 3, 4, 5], n_incidents, p=[0.1, 0.2, 0.3, 0.25, 0.15])
    incidents: list[dict[str, Any]] = []
    for k in range(n_incidents):
        n_lines = int(rng.integers(1, 4))
        skills = rng.choice(len(names), n_lines, replace=False, p=ask)
        demands = []
        for j in skills:
            base = rng.integers(2, 9) if prio[k] <= 2 else rng.integers(1, 6)
            count = max(1, round(float(base) * load))
            line: dict[str, Any] = {"skill": names[j], "count": count}
            if min_crew and count >= 2 and rng.random() < 0.5:
                line["min"] = int(rng.integers(2, count + 1))
            demands.append(line)
        wanted = rng.choice(len(ITEMS), int(rng.integers(0, 3)), replace=False)
        supplies = {ITEMS[j]: int(rng.integers(1, 50)) * 10 for j in wanted}
        incidents.append(
            {
                "id": f"i{k}",
                "lat": float(ipos[k, 0]),
                "lon": float(ipos[k, 1]),
                "priority": int(prio[k]),
                "demands": demands,
                "supplies": supplies,
            }
        )
    n_depots = max(3, n_incidents // 25)
    dpos = _points(rng, centres, n_depots, 3.0)
    depots = [
        {
            "id": f"d{k}",
            "lat": float(dpos[k, 0]),
            "lon": float(dpos[k, 1]),
            "stock": {it: int(rng.integers(0, 60)) * 20 for it in ITEMS},
        }
        for k in range(n_depots)
    ]
    snap: dict[str, Any] = {
        "version": 1,
        "people": people,
        "depots": depots,
        "incidents": incidents,
    }
    if locks:
        snap["previous"] = _previous(rng, pos, has, names, incidents)
    return snap


def _previous(
    rng: np.random.Generator,
    pos: np.ndarray,
    has: np.ndarray,
    names: list[str],
    incidents: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """A plan in force: ~10 % of lines hold a locked person, ~15 % an unlocked one."""
    used = np.zeros(len(pos), dtype=np.bool_)
    out: list[dict[str, Any]] = []
    for inc in incidents:
        for line in inc["demands"]:
            u = rng.random()
            if u >= 0.25:
                continue
            d = (pos[:, 0] - inc["lat"]) ** 2 + (pos[:, 1] - inc["lon"]) ** 2
            d[~has[:, names.index(line["skill"])] | used] = np.inf
            k = int(np.argmin(d))
            if not np.isfinite(d[k]):
                continue
            used[k] = True
            out.append(
                {
                    "person": f"p{k}",
                    "incident": inc["id"],
                    "skill": line["skill"],
                    "locked": bool(u < 0.10),
                }
            )
    return out
