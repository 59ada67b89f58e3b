"""Load the planner's view of the world (:class:`dispatch.planning.World`) in a few queries.

The roster is the large part of that view. Parsing a person's JSON columns, and asking for their
skills on a date and their availability at an instant, is the slow part of a re-plan, yet rows
change rarely. A :class:`WorldCache` keeps, per person, the parsed row (keyed by the row's
``version`` and ``xmin``, so any write is seen), the skills of the last date asked, the
availability with the instant it may next change, and the last :class:`~dispatch.planning.
PersonView` built. Each re-plan reads one digest of the roster's row identities; only when it
differs are the light columns of everyone read again, and the JSON columns of new or changed
rows only. The views are rebuilt only for people whose hours, skills or availability moved.

A cache belongs to one schema of one database: an engine owns one (its pool has one search
path); callers without one share a cache per ``(database, schema)``, so a drill schema, whose
people may have the ids and versions of live people, never reads live entries or the reverse.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from dispatch import planning, roster
from dispatch.assignments import Status
from dispatch.availability import availability_span
from dispatch.modes import ModePolicy, policy_for
from dispatch.storage import modes as mode_store
from dispatch.storage.queries import queries

Q = queries("engine")
W = queries("world")

__all__ = ["WorldCache", "clear_shared_caches", "load", "policy_view"]


@dataclass(eq=False)
class _Entry:
    """One active person: the light columns, the parsed row and the answers derived from it."""

    key: tuple[int, str]  # (version, xmin): changes with every write of the row
    person: roster.Person
    id: str = ""
    kind: str = ""
    reserve: bool = False
    path: str = ""
    lat: float = 0.0
    lon: float = 0.0
    max_hours: float = 0.0
    rest: timedelta = field(default_factory=timedelta)
    skills_on: date | None = None
    skills: tuple[str, ...] = ()
    available: bool = False
    available_from: datetime | None = None
    available_until: datetime | None = None  # None with available_from set: for good
    view: planning.PersonView | None = None

    def light(self, row: asyncpg.Record) -> _Entry:
        self.id, self.kind, self.reserve, self.path = (
            row["id"],
            row["kind"],
            row["reserve"],
            row["path"],
        )
        self.lat, self.lon = row["home_lat"], row["home_lon"]
        self.max_hours = float(row["max_hours_per_24h"])
        self.rest = timedelta(hours=float(row["min_rest_hours"]))
        self.view = None
        return self

    def skills_at(self, today: date) -> tuple[str, ...]:
        if self.skills_on != today:
            self.skills = tuple(sorted(roster.effective_skills(self.person, today)))
            self.skills_on = today
        return self.skills

    def available_at(self, now: datetime) -> bool:
        start, until = self.available_from, self.available_until
        if start is None or now < start or (until is not None and now >= until):
            self.available, until = availability_span(self.person, now)
            self.available_from, self.available_until = now, until
        return self.available

    def view_at(self, hours_left: float, today: date, now: datetime) -> planning.PersonView:
        skills = self.skills_at(today)
        available = self.available_at(now)
        v = self.view
        if v is None or (v.hours_left, v.skills, v.available_now) != (
            hours_left,
            skills,
            available,
        ):
            v = self.view = planning.PersonView(
                id=self.id,
                kind=self.kind,
                reserve=self.reserve,
                path=self.path,
                lat=self.lat,
                lon=self.lon,
                skills=skills,
                hours_left=hours_left,
                available_now=available,
            )
        return v


class WorldCache:
    """The active roster of one schema as last read (see the module docstring).

    Between two re-plans only some people's views can change: those with work in the last 24 h
    (their hours), and those whose availability span ended; everyone is looked at again when
    the roster was read again, on a new day (skills expire by date) or if time went backwards.
    """

    def __init__(self) -> None:
        self.people: dict[str, _Entry] = {}
        self.digest: str | None = None  # of the rows ``order`` was read from
        self.order: list[_Entry] = []  # active people by id
        self.parsed = 0  # rows parsed so far (misses), for benchmarks and tests
        self.reads = 0  # full reads of the light columns (the digest changed)
        self._views: list[planning.PersonView] = []  # by position in ``order``
        self._index: dict[str, int] = {}
        self._ends: list[tuple[datetime, int]] = []  # heap: (availability span end, position)
        self._work: dict[int, tuple[Any, Any]] = {}  # position → (hours, last released) seen
        self._built: tuple[date, datetime] | None = None  # (day, instant) of ``_views``

    def clear(self) -> None:
        self.people.clear()
        self.order = []
        self.digest = None
        self.clear_views()

    def clear_views(self) -> None:
        """Build every view again at the next read (the roster was read again)."""
        self._built = None

    def views(
        self, work: dict[str, asyncpg.Record], today: date, now: datetime
    ) -> list[planning.PersonView]:
        """Every active person's view at ``now``, given the work rows of the last 24 h."""
        order = self.order
        index = self._index
        built = self._built
        seen: dict[int, tuple[Any, Any]] = {}
        if built is None or built[0] != today or now < built[1] or len(self._views) != len(order):
            index = self._index = {e.id: n for n, e in enumerate(order)}
            self._views = [_view(e, work.get(e.id), today, now) for e in order]
            self._ends = [
                (e.available_until, n) for n, e in enumerate(order) if e.available_until is not None
            ]
            heapq.heapify(self._ends)
            for pid, w in work.items():
                if (n := index.get(pid)) is not None:
                    seen[n] = (w["hours"], w["last_released"])
        else:
            # Dirty: a work row that appeared, changed, vanished or whose rest period ended
            # since the last build; an availability span that ended.
            before = built[1]
            dirty = set(self._work)
            for pid, w in work.items():
                if (n := index.get(pid)) is None:
                    continue
                seen[n] = mine = (w["hours"], w["last_released"])
                last = mine[1]
                if self._work.get(n) != mine or (
                    last is not None and before < last + order[n].rest <= now
                ):
                    dirty.add(n)
                else:
                    dirty.discard(n)
            while self._ends and self._ends[0][0] <= now:
                dirty.add(heapq.heappop(self._ends)[1])
            for n in dirty:
                e = order[n]
                until = e.available_until
                self._views[n] = _view(e, work.get(e.id), today, now)
                if e.available_until is not None and e.available_until != until:
                    heapq.heappush(self._ends, (e.available_until, n))
        self._work = seen
        self._built = (today, now)
        return list(self._views)


def _view(
    e: _Entry, work: asyncpg.Record | None, today: date, now: datetime
) -> planning.PersonView:
    hours_left = e.max_hours
    if work is not None:
        hours_left -= float(work["hours"] or 0.0)
        last = work["last_released"]
        if last is not None and now - last < e.rest:
            hours_left = 0.0
    return e.view_at(max(0.0, hours_left), today, now)


_SHARED: dict[tuple[str, str], WorldCache] = {}


def clear_shared_caches() -> None:
    """Forget the caches of callers that pass none (tests and benchmarks)."""
    _SHARED.clear()


async def _shared(con: asyncpg.Connection) -> WorldCache:
    row = await con.fetchrow(W.cache_scope)
    return _SHARED.setdefault((row["db"], row["schema"]), WorldCache())


def policy_view(key: str, p: ModePolicy) -> planning.PolicyView:
    """The planner's view of a stored mode policy."""
    return planning.PolicyView(
        key=key,
        pools=tuple(pool.value for pool in p.callable_pools),
        mutual_aid=p.mutual_aid.value,
        max_travel_minutes=float(p.max_travel_minutes),
        priority_weights=dict(p.priority_weights),
        reassign_penalty_minutes=float(p.reassign_penalty_minutes),
        offer_expiry_s=p.offer_expiry_s,
        replan_every_s=p.replan_every_s,
    )


async def load(
    con: asyncpg.Connection, now: datetime, cache: WorldCache | None = None
) -> tuple[planning.World, dict[str, planning.PolicyView]]:
    """Everything one re-plan needs, read in one repeatable-read snapshot.

    ``cache`` must belong to the schema ``con`` reads (an engine passes its own); without one,
    the shared cache of ``con``'s database and schema is used.
    """
    if cache is None:
        cache = await _shared(con)
    async with con.transaction(isolation="repeatable_read", readonly=True):
        digest: str = await con.fetchval(W.people_digest)
        if digest != cache.digest:
            await _read_people(con, cache)
            cache.digest = digest
        work = {r["person_id"]: r for r in await con.fetch(Q.world_work, now)}
        incident_rows = await con.fetch(Q.world_incidents)
        allocated: dict[tuple[str, str], int] = {
            (r["incident_id"], r["item"]): r["quantity"] for r in await con.fetch(Q.world_allocated)
        }
        depot_rows = await con.fetch(Q.world_depots)
        active_rows = await con.fetch(Q.world_active)
        excluded: dict[str, set[str]] = {}
        for r in await con.fetch(Q.world_excluded):
            excluded.setdefault(r["incident_id"], set()).add(r["person_id"])
        stored = await mode_store.load_policies(con)
        effective = await mode_store.effective_modes(
            con, {r["jurisdiction_code"] for r in incident_rows}
        )
        source_paths = {
            r["code"]: r["path"]
            for r in await con.fetch(
                "SELECT code, path FROM jurisdictions WHERE code = ANY($1::text[])",
                sorted({e.source for e in effective.values()}),
            )
        }
    people = cache.views(work, now.date(), now)
    policies: dict[str, planning.PolicyView] = {}
    incidents: list[planning.IncidentView] = []
    for row in incident_rows:
        eff = effective[row["jurisdiction_code"]]
        key = eff.mode.key
        if key not in policies:
            policies[key] = policy_view(key, policy_for(eff.mode, stored))
        supplies = {
            item: int(q) - allocated.get((row["id"], item), 0)
            for item, q in (row["supplies"] or {}).items()
        }
        incidents.append(
            planning.IncidentView(
                id=row["id"],
                path=row["path"],
                lat=row["lat"],
                lon=row["lon"],
                priority=row["priority"],
                demands=tuple(_demand(d) for d in row["demands"] or []),
                supplies={k: v for k, v in supplies.items() if v > 0},
                source_path=source_paths.get(eff.source) if eff.mode.is_emergency else None,
                policy=policies[key],
            )
        )
    depots = [
        planning.DepotView(
            id=r["id"],
            path=r["path"],
            lat=r["lat"],
            lon=r["lon"],
            stock={k: int(v) for k, v in (r["stock"] or {}).items()},
        )
        for r in depot_rows
    ]
    active = [
        planning.ActiveView(
            id=r["id"],
            person_id=r["person_id"],
            incident_id=r["incident_id"],
            skill=r["skill"],
            status=Status(r["status"]),
            locked=r["locked"],
            pinned=r["pinned"],
        )
        for r in active_rows
    ]
    world = planning.World(people, incidents, depots, active, excluded)
    return world, policies


async def _read_people(con: asyncpg.Connection, cache: WorldCache) -> None:
    """Read the light columns of every active person, and the JSON columns of changed rows.

    Entries of people no longer active are dropped, so the cache stays the roster's size.
    """
    rows = await con.fetch(W.people_light)
    old = cache.people
    stale = [r["id"] for r in rows if (e := old.get(r["id"])) is None or e.key != _key(r)]
    fresh: dict[str, _Entry] = {}
    if stale:
        full = await con.fetch(W.people_full, stale)
        # Parsing is CPU work (a cold read, or after an import, tens of thousands of rows):
        # off the event loop.
        parsed = await asyncio.get_running_loop().run_in_executor(None, _parse, full)
        fresh = {r["id"]: _Entry(_key(r), p) for r, p in zip(full, parsed, strict=True)}
        cache.parsed += len(fresh)
    cache.reads += 1
    current = {r["id"]: (fresh.get(r["id"]) or old[r["id"]]).light(r) for r in rows}
    cache.people = current
    cache.order = list(current.values())
    cache.clear_views()


def _parse(rows: list[asyncpg.Record]) -> list[roster.Person]:
    return [roster.person_from_row(dict(r)) for r in rows]


def _key(row: asyncpg.Record) -> tuple[int, str]:
    return (row["version"], row["xmin"])


def _demand(d: dict[str, Any]) -> dict[str, Any]:
    return {"skill": d["skill"], "count": int(d["count"]), "min": int(d.get("min", 1))}
