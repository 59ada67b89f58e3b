"""Engine fixtures: the real app with an injected clock; tests drive the engine themselves."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from api.app import create_app
from api.keys import ENGINE
from dispatch.clock import ManualClock
from dispatch.config import Settings
from tests.conftest import bearer

START = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
CENTRES = {"a-1": (31.230, 121.470), "b-1": (31.300, 121.560)}
SKILLS = ["first_aid", "driver", "search_rescue", "logistics"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest_asyncio.fixture(loop_scope="session")
async def eng_client(settings: Settings, clock: ManualClock, aiohttp_client: Any) -> Any:
    """The real app on the test database, engine driven by ``clock`` (no background runner)."""
    return await aiohttp_client(create_app(settings, clock=clock))


def engine_of(client: Any) -> Any:
    return client.server.app[ENGINE]


def roster(n_per_street: int = 150, seed: int = 7) -> list[dict[str, Any]]:
    """People around two street centres, with a realistic skill mix."""
    rng = random.Random(seed)
    people = []
    for street, (lat, lon) in CENTRES.items():
        for k in range(n_per_street):
            r = rng.random() * 0.03
            t = rng.random() * 2 * math.pi
            skills = rng.sample(SKILLS, rng.choice([1, 1, 2, 2, 3]))
            people.append(
                {
                    "id": f"{street}-p{k:03d}",
                    "kind": "staff" if k % 5 == 0 else "volunteer",
                    "name": f"Person {street} {k}",
                    "jurisdiction": street,
                    "home": {
                        "lat": round(lat + r * math.cos(t), 6),
                        "lon": round(lon + r * math.sin(t), 6),
                    },
                    "skills": [{"name": s, "level": rng.randint(1, 5)} for s in sorted(skills)],
                }
            )
    return people


async def build_city(client: Any, admin: str, people: list[dict[str, Any]]) -> None:
    """City ``c`` with districts ``a`` and ``b``, one street each, and the roster."""
    h = bearer(admin)
    for body in (
        {"code": "c", "kind": "city", "name": "City"},
        {"code": "a", "parent": "c", "kind": "district", "name": "District A"},
        {"code": "b", "parent": "c", "kind": "district", "name": "District B"},
        {"code": "a-1", "parent": "a", "kind": "street", "name": "Street A1"},
        {"code": "b-1", "parent": "b", "kind": "street", "name": "Street B1"},
    ):
        r = await client.post("/v1/jurisdictions", json=body, headers=h)
        assert r.status == 201, await r.text()
    r = await client.post("/v1/people:import", json=people, headers=h)
    assert r.status in (200, 201), await r.text()


def travel_minutes(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The solver's default travel model (haversine × 1.3 at 30 km/h)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    km = 2 * 6371.0088 * math.asin(math.sqrt(a))
    return km * 1.3 / 30 * 60
