"""Load a generated :class:`dispatch.demo_city.City` into the database in one transaction."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from dispatch.audit import AuditContext, AuditEntry
from dispatch.demo_city import City
from dispatch.storage import audit_log, roster_import
from dispatch.storage.queries import queries

QJ = queries("jurisdictions")


async def load_city(con: asyncpg.Connection, city: City, ctx: AuditContext) -> dict[str, Any]:
    """Insert the city's jurisdictions, people, items, depots and stock; audited as one seed."""
    async with con.transaction():
        for j in city.jurisdictions:
            c = j.get("centre") or {}
            await con.execute(
                QJ.insert,
                j["code"],
                j.get("parent"),
                j["kind"],
                j["name"],
                c.get("lat"),
                c.get("lon"),
                None,
            )
        parsed = roster_import.parse(json.dumps(city.people).encode(), "json")
        summary = await roster_import.import_people(con, None, ctx, parsed)
        await con.executemany(
            "INSERT INTO items (code, name, unit) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [(i["code"], i["name"], i["unit"]) for i in city.items],
        )
        await con.executemany(
            "INSERT INTO depots (id, name, jurisdiction_code, lat, lon) VALUES ($1, $2, $3, $4, $5)",
            [(d["id"], d["name"], d["jurisdiction"], d["lat"], d["lon"]) for d in city.depots],
        )
        await con.executemany(
            "INSERT INTO stock (depot_id, item, quantity) VALUES ($1, $2, $3)",
            [(d["id"], item, q) for d in city.depots for item, q in d["stock"].items()],
        )
        counts = {
            "jurisdictions": len(city.jurisdictions),
            "people": summary.get("imported", len(city.people)),
            "depots": len(city.depots),
            "items": len(city.items),
        }
        await audit_log.record(con, ctx, AuditEntry("seed", "city", "demo", None, counts))
        return counts
