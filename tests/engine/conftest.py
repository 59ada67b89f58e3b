"""Engine fixtures: the real app with an injected clock; tests drive the engine themselves."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from api.app import create_app
from api.keys import ENGINE
from dispatch.clock import ManualClock
from dispatch.config import Settings
from tests.conftest import bearer, create_jurisdictions

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
    """City ``c`` with districts ``a`` and ``b``, one street each (:data:`TREE`), and the roster."""
    await create_jurisdictions(client, admin)
    r = await client.post("/v1/people:import", json=people, headers=bearer(admin))
    assert r.status in (200, 201), await r.text()


def medic(pid: str, **extra: Any) -> dict[str, Any]:
    """A volunteer first-aider of street ``a-1`` (``extra`` overrides or adds fields)."""
    return {
        "id": pid,
        "kind": "volunteer",
        "name": pid,
        "jurisdiction": "a-1",
        "home": {"lat": 31.23, "lon": 121.47},
        "skills": [{"name": "first_aid", "level": 3}],
        **extra,
    }


#: A priority-1 incident in street ``a-1`` that needs two first-aiders.
FLOOD: dict[str, Any] = {
    "id": "i-flood",
    "type": "flood",
    "title": "Flooded underpass",
    "priority": 1,
    "location": {"lat": 31.231, "lon": 121.471},
    "jurisdiction": "a-1",
    "demands": [{"skill": "first_aid", "count": 2}],
}


async def level(client: Any, token: str, code: str, lvl: str, reason: str = "test") -> None:
    """Put jurisdiction ``code`` in emergency mode at level ``lvl`` (must be 200)."""
    r = await client.put(
        f"/v1/jurisdictions/{code}/mode",
        json={"mode": "emergency", "level": lvl, "reason": reason},
        headers=bearer(token),
    )
    assert r.status == 200, await r.text()


async def past_work(dsn: str, shifts: dict[str, tuple[datetime, datetime]]) -> None:
    """Released assignments on an old incident ``i0``: person -> (accepted at, released at)."""
    con = await asyncpg.connect(dsn)
    try:
        await con.execute(
            "INSERT INTO incidents (id, type, title, lat, lon, jurisdiction_code, priority, demands)"
            " VALUES ('i0', 'x', 'old job', 31.23, 121.47, 'a-1', 3, '[]')"
        )
        await con.executemany(
            "INSERT INTO assignments (person_id, incident_id, skill, status, proposed_at,"
            " accepted_at, released_at) VALUES ($1, 'i0', 'first_aid', 'released', $2, $2, $3)",
            [(pid, start, end) for pid, (start, end) in shifts.items()],
        )
    finally:
        await con.close()


def travel_minutes(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The solver's default travel model (haversine × 1.3 at 30 km/h)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    km = 2 * 6371.0088 * math.asin(math.sqrt(a))
    return km * 1.3 / 30 * 60
