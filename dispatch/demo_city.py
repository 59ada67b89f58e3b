"""A generated, realistic demo city: jurisdictions, people, depots and stock. Pure and seeded.

Used by ``muster seed demo``, the benchmarks and drills. Geography is loosely modelled on a large
river city: districts on a ring around the centre, streets and communities inside each; people
live in communities, clustered around their centres.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

CENTRE = (31.2304, 121.4737)

DISTRICTS = [
    ("huangpu", "Huangpu"),
    ("xuhui", "Xuhui"),
    ("changning", "Changning"),
    ("jingan", "Jing'an"),
    ("putuo", "Putuo"),
    ("hongkou", "Hongkou"),
    ("yangpu", "Yangpu"),
    ("pudong", "Pudong"),
]
STREET_NAMES = ["Riverside", "Market", "Garden", "Harbour", "Temple", "Station", "Lake", "Bridge"]

# skill → share of people holding it (a person holds 1–3 skills).
SKILL_MIX = {
    "first_aid": 0.30,
    "driver": 0.25,
    "logistics": 0.22,
    "search_rescue": 0.10,
    "elderly_care": 0.14,
    "radio": 0.08,
    "cook": 0.08,
    "nurse": 0.05,
    "boat": 0.03,
    "electrician": 0.04,
}
CERTIFIED = {"first_aid", "nurse", "boat", "search_rescue"}

ITEMS = [
    ("water_l", "Drinking water", "litre"),
    ("food_kit", "Food kit (1 person, 1 day)", "kit"),
    ("blanket", "Blanket", "piece"),
    ("mask", "Face mask", "piece"),
    ("medical_kit", "Medical kit", "kit"),
    ("sandbag", "Sandbag", "bag"),
    ("generator", "Generator 5 kW", "unit"),
    ("tent", "Family tent", "unit"),
]
FIRST = (
    "Wei Li Fang Min Jing Lei Yan Hui Chen Xiu Ying Tao Qiang Mei Jun Ling Hao Yu "
    "Anna Ben Chloe David Emma Farid Grace Hugo Iris Jonas"
).split()
LAST = "Zhang Wang Li Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Gao Lin Luo".split()


@dataclass
class City:
    """Everything a demo city holds, in the shapes the API accepts."""

    jurisdictions: list[dict[str, Any]] = field(default_factory=list)
    people: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, str]] = field(default_factory=list)
    depots: list[dict[str, Any]] = field(default_factory=list)

    def communities(self) -> list[dict[str, Any]]:
        """The leaf jurisdictions, where people live."""
        return [j for j in self.jurisdictions if j["kind"] == "community"]


def _offset(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    dlat = km / 111.32 * math.cos(bearing)
    dlon = km / (111.32 * math.cos(math.radians(lat))) * math.sin(bearing)
    return round(lat + dlat, 6), round(lon + dlon, 6)


def _skills(rng: random.Random) -> list[dict[str, Any]]:
    names = [s for s, share in SKILL_MIX.items() if rng.random() < share]
    if not names:
        names = [rng.choices(list(SKILL_MIX), weights=list(SKILL_MIX.values()))[0]]
    return [{"name": s, "level": rng.randint(1, 5)} for s in sorted(names)[:3]]


def _availability(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "staff":
        weekly = [{"day": d, "start": "08:00", "end": "18:00"} for d in range(5)]
    else:
        pattern = rng.random()
        if pattern < 0.4:
            weekly = []  # any time
        elif pattern < 0.7:
            weekly = [{"day": d, "start": "18:00", "end": "23:00"} for d in range(7)]
        else:
            weekly = [{"day": d, "start": "08:00", "end": "20:00"} for d in (5, 6)]
    return {"timezone": "Asia/Shanghai", "weekly": weekly}


def generate(
    people: int = 2000, *, seed: int = 1, districts: int = 8, streets: int = 3, communities: int = 3
) -> City:
    """A city with ``people`` people spread over districts → streets → communities."""
    rng = random.Random(seed)
    city = City()
    city.jurisdictions.append(
        {
            "code": "city",
            "kind": "city",
            "name": "Demo City",
            "centre": {"lat": CENTRE[0], "lon": CENTRE[1]},
        }
    )
    leaves: list[tuple[str, float, float]] = []
    for d, (dcode, dname) in enumerate(DISTRICTS[:districts]):
        dlat, dlon = _offset(*CENTRE, 7.0, 2 * math.pi * d / districts)
        city.jurisdictions.append(
            {
                "code": dcode,
                "parent": "city",
                "kind": "district",
                "name": dname,
                "centre": {"lat": dlat, "lon": dlon},
            }
        )
        for s in range(streets):
            scode = f"{dcode}-{s + 1}"
            slat, slon = _offset(dlat, dlon, 2.0, 2 * math.pi * s / streets + d)
            city.jurisdictions.append(
                {
                    "code": scode,
                    "parent": dcode,
                    "kind": "street",
                    "name": f"{STREET_NAMES[(d + s) % 8]} Street",
                    "centre": {"lat": slat, "lon": slon},
                }
            )
            for c in range(communities):
                ccode = f"{scode}-{c + 1}"
                clat, clon = _offset(slat, slon, 0.8, 2 * math.pi * c / communities)
                city.jurisdictions.append(
                    {
                        "code": ccode,
                        "parent": scode,
                        "kind": "community",
                        "name": f"Community {d + 1}.{s + 1}.{c + 1}",
                        "centre": {"lat": clat, "lon": clon},
                    }
                )
                leaves.append((ccode, clat, clon))
    for k in range(people):
        code, lat, lon = leaves[k % len(leaves)]
        plat, plon = _offset(lat, lon, abs(rng.gauss(0, 0.6)), rng.random() * 2 * math.pi)
        kind = "staff" if rng.random() < 0.15 else "volunteer"
        skills = _skills(rng)
        certs = [
            {
                "name": s["name"],
                "expires_on": f"{rng.randint(2027, 2029)}-{rng.randint(1, 12):02d}-28",
            }
            for s in skills
            if s["name"] in CERTIFIED
        ]
        city.people.append(
            {
                "id": f"p{k + 1:06d}",
                "kind": kind,
                "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "jurisdiction": code,
                "home": {"lat": plat, "lon": plon},
                "contacts": {
                    "phone": f"+86 139 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
                },
                "skills": skills,
                "certifications": certs,
                "availability": _availability(rng, kind),
                "max_hours_per_24h": 12 if kind == "volunteer" else 10,
                "min_rest_hours": 8,
                "reserve": kind == "volunteer" and rng.random() < 0.06,
            }
        )
    city.items = [{"code": c, "name": n, "unit": u} for c, n, u in ITEMS]
    stock_scale = max(1, people // 500)
    for j in city.jurisdictions:
        if j["kind"] not in ("city", "district"):
            continue
        big = 4 if j["kind"] == "city" else 1
        city.depots.append(
            {
                "id": f"depot-{j['code']}",
                "name": f"{j['name']} depot",
                "jurisdiction": j["code"],
                "lat": j["centre"]["lat"],
                "lon": j["centre"]["lon"],
                "stock": {
                    "water_l": 2000 * big * stock_scale,
                    "food_kit": 300 * big * stock_scale,
                    "blanket": 200 * big * stock_scale,
                    "mask": 2000 * big * stock_scale,
                    "medical_kit": 40 * big * stock_scale,
                    "sandbag": 500 * big * stock_scale,
                    "generator": 2 * big,
                    "tent": 20 * big * stock_scale,
                },
            }
        )
    return city
