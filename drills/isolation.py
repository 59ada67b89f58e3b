"""A drill's own PostgreSQL schema: created from the same migrations, seeded, dropped at the end.

Isolation: the drill's pool has ``search_path = "drill_<id>", public`` (see
:func:`dispatch.storage.database.create_pool`), and every table the code touches exists in the
drill schema, so every statement of the engine, domain and storage code resolves there. The only
flow from live data into a drill is :func:`copy_snapshot`, which reads ``public`` explicitly and
writes the drill schema; nothing ever writes ``public``.

One deliberate difference from a live schema: assignment and allocation ids come from sequences
in the drill schema instead of ``gen_random_uuid()``, because the engine breaks a few ties by id
and a drill must replay identically for the same seed.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from dispatch.access import Principal, Role
from dispatch.audit import AuditContext, AuditEntry
from dispatch.demo_city import City, generate
from dispatch.storage import audit_log, roster_import
from dispatch.storage import supplies as supplies_store
from dispatch.storage.migrations import migrate
from dispatch.storage.seed import load_city
from dispatch.supplies import DepotCreate
from drills.scenario import Scenario

__all__ = ["copy_snapshot", "create_schema", "drop_schema", "load_roster", "new_schema_name"]

_SCHEMA = re.compile(r"^drill_[a-z0-9_]{1,50}$")

#: The trainer's actor in a drill: an unscoped admin *inside the drill schema only* (the trainer
#: role has no write permission on live objects, and a drill touches no live objects).
TRAINER = Principal("drill-trainer", Role.ADMIN, None, None)


def new_schema_name() -> str:
    """A fresh ``drill_<hex>`` schema name."""
    return f"drill_{uuid.uuid4().hex[:12]}"


def _q(schema: str) -> str:
    if not _SCHEMA.match(schema):
        raise ValueError(f"not a drill schema name: {schema!r}")
    return f'"{schema}"'


async def create_schema(con: asyncpg.Connection, schema: str) -> None:
    """Create and migrate the drill schema; make its generated ids deterministic."""
    s = _q(schema)
    await migrate(con, schema)
    await con.execute(
        f"""
        CREATE SEQUENCE {s}.drill_assignment_ids;
        CREATE SEQUENCE {s}.drill_allocation_ids;
        ALTER TABLE {s}.assignments ALTER COLUMN id
            SET DEFAULT 'a-' || lpad(nextval('{schema}.drill_assignment_ids')::text, 8, '0');
        ALTER TABLE {s}.allocations ALTER COLUMN id
            SET DEFAULT 's-' || lpad(nextval('{schema}.drill_allocation_ids')::text, 8, '0');
        """
    )


async def drop_schema(con: asyncpg.Connection, schema: str) -> None:
    """Drop a drill schema and everything in it (only ``drill_*`` names are accepted)."""
    await con.execute(f"DROP SCHEMA IF EXISTS {_q(schema)} CASCADE")


def _skeleton(city: City) -> City:
    return City(jurisdictions=city.jurisdictions, people=[], items=city.items, depots=city.depots)


async def load_roster(
    con: asyncpg.Connection, schema: str, scenario: Scenario, base_dir: Path
) -> dict[str, Any]:
    """Seed the drill schema (``con`` has its search path) from the scenario's roster."""
    ctx = AuditContext.system("drill")
    roster = scenario.roster
    if roster.generated is not None:
        g = roster.generated
        counts = await load_city(con, generate(g.people, seed=g.seed, districts=g.districts), ctx)
        source: dict[str, Any] = {"generated": g.model_dump()}
    elif roster.file is not None:
        path = (base_dir / roster.file).resolve()
        counts = await load_city(con, _skeleton(generate(1, seed=roster.city_seed)), ctx)
        fmt = "csv" if path.suffix.lower() == ".csv" else "json"
        parsed = roster_import.parse(path.read_bytes(), fmt)
        summary = await roster_import.import_people(con, None, ctx, parsed)
        counts["people"] = summary["imported"]
        source = {"file": path.name}
    else:
        assert roster.snapshot is not None
        counts = await copy_snapshot(con, schema, roster.snapshot.jurisdiction)
        source = {"snapshot": roster.snapshot.jurisdiction}
    for d in scenario.depots:
        body = DepotCreate.model_validate(
            {
                "id": d.id,
                "name": d.name,
                "jurisdiction": d.jurisdiction,
                "location": d.location.model_dump(),
                "stock": dict(d.stock),
            },
            strict=False,
        )
        await supplies_store.create_depot(con, TRAINER, ctx, body)
    counts["depots"] = await con.fetchval("SELECT count(*) FROM depots")
    return {"source": source, **counts}


async def copy_snapshot(con: asyncpg.Connection, schema: str, code: str) -> dict[str, Any]:
    """Copy the live roster of ``code``'s subtree into the drill schema.

    Copied: the jurisdictions of the subtree and its ancestors, every item, the subtree's active
    people, the active depots of the subtree and its ancestors with their stock (live
    reservations are not copied), and the mode policies. Not copied: modes, incidents,
    assignments, tokens, audit. One transaction; audited in the drill's own log.
    """
    s = _q(schema)
    live = [r["version"] for r in await con.fetch("SELECT version FROM public.schema_migrations")]
    mine = [r["version"] for r in await con.fetch(f"SELECT version FROM {s}.schema_migrations")]
    if sorted(live) != sorted(mine):
        raise RuntimeError("the live database is not on the same migrations as this Muster")
    path = await con.fetchval("SELECT path FROM public.jurisdictions WHERE code = $1", code)
    if path is None:
        raise LookupError(f"no live jurisdiction {code!r} to copy")
    ancestors = ["/".join(path.split("/")[:k]) for k in range(2, path.count("/") + 1)]
    async with con.transaction():
        await con.execute(
            f"INSERT INTO {s}.jurisdictions SELECT * FROM public.jurisdictions AS j"
            " WHERE j.path = $1 OR starts_with(j.path, $1 || '/') OR j.path = ANY($2::text[])",
            path,
            ancestors,
        )
        await con.execute(f"INSERT INTO {s}.items SELECT * FROM public.items")
        people = await con.execute(
            f"INSERT INTO {s}.people SELECT p.* FROM public.people AS p"
            " JOIN public.jurisdictions AS j ON j.code = p.jurisdiction_code"
            " WHERE p.active AND (j.path = $1 OR starts_with(j.path, $1 || '/'))",
            path,
        )
        await con.execute(
            f"INSERT INTO {s}.depots SELECT d.* FROM public.depots AS d"
            f" WHERE d.active AND d.jurisdiction_code IN (SELECT code FROM {s}.jurisdictions)"
        )
        await con.execute(
            f"INSERT INTO {s}.stock (depot_id, item, quantity, reserved)"
            " SELECT st.depot_id, st.item, st.quantity, 0 FROM public.stock AS st"
            f" WHERE st.depot_id IN (SELECT id FROM {s}.depots)"
        )
        await con.execute(f"DELETE FROM {s}.mode_policies")
        await con.execute(f"INSERT INTO {s}.mode_policies SELECT * FROM public.mode_policies")
        counts = {
            "jurisdictions": await con.fetchval(f"SELECT count(*) FROM {s}.jurisdictions"),
            "people": int(people.split()[-1]),
            "depots": await con.fetchval(f"SELECT count(*) FROM {s}.depots"),
        }
        await audit_log.record(
            con,
            AuditContext.system("drill"),
            AuditEntry("snapshot", "drill", schema, None, {"jurisdiction": code, **counts}),
        )
    return counts
