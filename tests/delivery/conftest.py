"""Delivery fixtures: the engine app (ManualClock) with short heartbeats, a small city, SSE and
WebSocket readers that wait with deadlines (never fixed sleeps)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dispatch.config import Settings
from tests.conftest import bearer, make_token
from tests.engine.conftest import build_city, clock, eng_client

__all__ = ["clock", "eng_client"]  # re-exported fixtures

#: Short, so idle streams show pings quickly and "nothing more arrived" is cheap to observe.
HEARTBEAT_S = 0.25
WAIT_S = 10.0


@pytest.fixture
def settings(db_dsn: str, tmp_path: Path) -> Settings:
    """App settings on the test database, engine not live, short heartbeats."""
    return Settings(
        database_url=db_dsn,
        data_dir=tmp_path,
        pool_min=1,
        pool_max=5,
        engine=False,
        heartbeat_s=HEARTBEAT_S,
        replan_debounce_s=1.0,
    )


def person(pid: str, street: str, skills: list[str], lat: float, lon: float) -> dict[str, Any]:
    return {
        "id": pid,
        "kind": "volunteer",
        "name": f"Volunteer {pid}",
        "jurisdiction": street,
        "home": {"lat": lat, "lon": lon},
        "contacts": {"phone": "+86 21 5555 0100", "preferred": ["phone"]},
        "skills": [{"name": s, "level": 3} for s in skills],
    }


PEOPLE = [
    person("v-ann", "a-1", ["first_aid"], 31.231, 121.469),
    person("v-bob", "a-1", ["first_aid", "driver"], 31.232, 121.471),
    person("v-cy", "b-1", ["first_aid"], 31.301, 121.561),
]


def incident(iid: str, street: str = "a-1", skill: str = "first_aid", n: int = 1) -> dict[str, Any]:
    lat, lon = (31.2305, 121.4705) if street == "a-1" else (31.3005, 121.5605)
    return {
        "id": iid,
        "type": "medical",
        "title": f"Incident {iid}",
        "priority": 2,
        "location": {"lat": lat, "lon": lon},
        "jurisdiction": street,
        "demands": [{"skill": skill, "count": n}],
    }


@dataclass
class World:
    """The small city and tokens used by the delivery tests."""

    client: Any
    admin: str
    coord: str  # coordinator of the whole city
    tokens: dict[str, str] = field(default_factory=dict)  # person id -> volunteer token

    def h(self, who: str) -> dict[str, str]:
        """Headers for a person id, or 'admin' / 'coord'."""
        if who == "admin":
            return bearer(self.admin)
        if who == "coord":
            return bearer(self.coord)
        return bearer(self.tokens[who])

    async def incident(self, iid: str, street: str = "a-1", **kw: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/incidents", json=incident(iid, street, **kw), headers=self.h("coord")
        )
        assert r.status == 201, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def pin(self, iid: str, pid: str, skill: str = "first_aid") -> dict[str, Any]:
        r = await self.client.post(
            f"/v1/incidents/{iid}/pins",
            json={"person": pid, "skill": skill},
            headers=self.h("coord"),
        )
        assert r.status == 201, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def cancel(self, assignment_id: str) -> None:
        r = await self.client.post(
            f"/v1/assignments/{assignment_id}/cancel", headers=self.h("coord")
        )
        assert r.status == 200, await r.text()


async def make_world(client: Any, admin: str, db_dsn: str) -> World:
    await build_city(client, admin, PEOPLE)
    world = World(client, admin, await make_token(db_dsn, "coordinator", "c"))
    for p in PEOPLE:
        world.tokens[p["id"]] = await make_token(db_dsn, "volunteer", person=p["id"])
    return world


async def emergency(world: World, district: str = "a", level: str = "III") -> None:
    """Volunteers are callable only from level III up (routine calls on-duty staff)."""
    r = await world.client.put(
        f"/v1/jurisdictions/{district}/mode",
        json={"mode": "emergency", "level": level, "reason": "storm"},
        headers=world.h("coord"),
    )
    assert r.status == 200, await r.text()


@dataclass
class Sse:
    """One SSE event as read off the wire (``comment`` for ``: ping`` lines)."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads an SSE response block by block, each read bounded by a deadline."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    async def next(self, within: float = WAIT_S) -> Sse | None:
        """The next block (``None`` at end of stream)."""
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> Sse | None:
        ev = Sse()
        data: list[str] = []
        seen = False
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if line == "":
                if seen:
                    ev.data = "\n".join(data)
                    return ev
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                ev.comment = value
            elif name == "id":
                ev.id = value
            elif name == "event":
                ev.event = value
            elif name == "data":
                data.append(value)
            elif name == "retry":
                ev.retry = int(value)

    async def message(self, within: float = WAIT_S) -> Sse:
        """The next event that is not a heartbeat."""
        while True:
            ev = await self.next(within)
            assert ev is not None, "the stream ended"
            if ev.comment is None and ev.retry is None:
                return ev

    async def nothing_more(self) -> None:
        """Two heartbeats in a row with no message in between: nothing else is pending."""
        pings = 0
        while pings < 2:
            ev = await self.next()
            assert ev is not None, "the stream ended"
            assert ev.comment == "ping", f"unexpected event {ev}"
            pings += 1

    def close(self) -> None:
        self.resp.close()


async def open_sse(
    client: Any, headers: dict[str, str], path: str = "/v1/me/stream", **params: str
) -> SseReader:
    """Open an SSE stream and consume its ``retry:`` preamble."""
    resp = await client.get(path, headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(resp)
    first = await reader.next()
    assert first is not None and first.retry == 3000
    return reader
