"""The engine's cached read of the roster, and compressed plan snapshots read back whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from dispatch.clock import ManualClock
from dispatch.storage import world as world_store
from dispatch.storage.database import create_pool
from drills import isolation
from tests.conftest import bearer
from tests.engine.conftest import FLOOD, START, build_city, engine_of, level, medic, past_work


async def test_a_changed_person_is_seen_at_once_and_only_changed_rows_are_parsed_again(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_city(eng_client, admin_token, [medic(f"m{k}") for k in range(5)])
    cache = world_store.WorldCache()
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as con:
            world, _ = await world_store.load(con, START, cache)
            assert cache.parsed == 5 and cache.reads == 1
            assert {p.id: p.skills for p in world.people}["m2"] == ("first_aid",)
            # Nothing changed: no roster read, no parsing, the very same views.
            again, _ = await world_store.load(con, START + timedelta(minutes=5), cache)
            assert cache.parsed == 5 and cache.reads == 1
            assert all(a is b for a, b in zip(world.people, again.people, strict=True))

            r = await eng_client.patch(
                "/v1/people/m2",
                json={"skills": [{"name": "driver", "level": 2}]},
                headers=bearer(admin_token),
            )
            assert r.status == 200, await r.text()
            # A write that keeps the version (a direct SQL fix) is still seen: rows are keyed
            # by their version and their xmin.
            await con.execute(
                "UPDATE people SET availability = $1 WHERE id = 'm4'",
                {"weekly": [], "exceptions": [_away()]},
            )
            world, _ = await world_store.load(con, START, cache)
            assert cache.parsed == 7 and cache.reads == 2
            view = {p.id: p for p in world.people}
            assert view["m2"].skills == ("driver",)
            assert view["m4"].available_now is False and view["m3"].available_now is True

            await con.execute("UPDATE people SET active = false WHERE id = 'm0'")
            world, _ = await world_store.load(con, START, cache)
            assert [p.id for p in world.people] == ["m1", "m2", "m3", "m4"]
            assert sorted(cache.people) == ["m1", "m2", "m3", "m4"]
    finally:
        await pool.close()


async def test_cached_views_follow_time_windows_closing_and_rest_periods_ending(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    """Between reads only some views are rebuilt; time alone must still move the others."""
    office = {
        "timezone": "UTC",
        "weekly": [{"day": d, "start": "08:00", "end": "18:00"} for d in (1, 2)],
    }
    people = [medic("office", availability=office), medic("rested", min_rest_hours=8), medic("x")]
    await build_city(eng_client, admin_token, people)
    # 'rested' worked 09:00-11:00 (START is Tuesday 09:00): rests until 19:00.
    await past_work(db_dsn, {"rested": (START, START + timedelta(hours=2))})
    cache = world_store.WorldCache()
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as c:
            seen = []
            midnight = START.replace(hour=0)
            for hh, mm in ((17, 59), (18, 0), (18, 59), (19, 0), (32, 0)):
                at = midnight + timedelta(hours=hh, minutes=mm)
                world, _ = await world_store.load(c, at, cache)
                v = {p.id: p for p in world.people}
                seen.append((v["office"].available_now, v["rested"].hours_left))
    finally:
        await pool.close()
    assert cache.reads == 1  # one roster read; everything else came from the cache
    assert seen == [
        (True, 0.0),  # 17:59: the window is open; resting
        (False, 0.0),  # 18:00: closed
        (False, 0.0),  # 18:59: still resting
        (False, 10.0),  # 19:00: rested; 2 of 12 hours worked in the last 24 h
        (True, 10.0),  # Wednesday 08:00: open again (a new day: every view looked at)
    ]


def _away() -> dict[str, Any]:
    return {
        "start": (START - timedelta(hours=1)).isoformat(),
        "end": (START + timedelta(hours=1)).isoformat(),
        "available": False,
    }


async def test_a_drill_schema_with_the_live_ids_and_versions_never_shares_their_cache(
    db_dsn: str,
) -> None:
    """The same person id and version in two schemas, different skills: each read sees its own."""
    schema = isolation.new_schema_name()
    admin = await asyncpg.connect(db_dsn)
    await isolation.create_schema(admin, schema)
    live = await create_pool(db_dsn, min_size=1, max_size=1)
    drill = await create_pool(db_dsn, schema=schema, min_size=1, max_size=1)
    try:
        for pool, skill in ((live, "first_aid"), (drill, "boat")):
            async with pool.acquire() as con:
                await con.execute(
                    "INSERT INTO jurisdictions (code, kind, name, path)"
                    " VALUES ('c', 'city', 'City', '/c')"
                )
                await con.execute(
                    "INSERT INTO people (id, kind, name, jurisdiction_code, home_lat, home_lon,"
                    " skills) VALUES ('p1', 'volunteer', 'Ann', 'c', 31.2, 121.5, $1)",
                    [{"name": skill, "level": 3}],
                )
        world_store.clear_shared_caches()
        for _ in range(2):  # second round: both answered from their caches
            async with live.acquire() as con:
                w_live, _ = await world_store.load(con, START)
            async with drill.acquire() as con:
                w_drill, _ = await world_store.load(con, START)
            assert w_live.people[0].skills == ("first_aid",)
            assert w_drill.people[0].skills == ("boat",)
    finally:
        await drill.close()
        await live.close()
        await isolation.drop_schema(admin, schema)
        await admin.close()
        world_store.clear_shared_caches()


async def test_a_plan_snapshot_is_stored_compressed_and_served_whole(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    h = bearer(admin_token)
    await build_city(eng_client, admin_token, [medic(f"m{k}") for k in range(4)])
    await level(eng_client, admin_token, "a", "II")
    r = await eng_client.post("/v1/incidents", json={**FLOOD, "id": "i1"}, headers=h)
    assert r.status == 201, await r.text()
    clock.advance(timedelta(seconds=2))
    report = await engine_of(eng_client).run_due()
    assert report.plan_id is not None and report.offers == 2
    con = await asyncpg.connect(db_dsn)
    try:
        row = await con.fetchrow(
            "SELECT snapshot, snapshot_z FROM plans WHERE id = $1", report.plan_id
        )
    finally:
        await con.close()
    assert row["snapshot"] is None and row["snapshot_z"] is not None
    r = await eng_client.get(f"/v1/plans/{report.plan_id}/snapshot", headers=h)
    assert r.status == 200, await r.text()
    groups = (await r.json())["groups"]
    assert [g["key"] for g in groups] == ["II@/c/a"]
    snap = groups[0]["snapshot"]
    assert sorted(p["id"] for p in snap["people"]) == ["m0", "m1", "m2", "m3"]
    assert [i["id"] for i in snap["incidents"]] == ["i1"]
