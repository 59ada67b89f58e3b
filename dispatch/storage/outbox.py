"""Reading the outbox for delivery: replay after a sequence number, acknowledgements.

Messages are written by :func:`dispatch.storage.engine.send` in the transaction of the change;
the per-person ``seq`` comes from a trigger that locks the person's counter row until commit, so
for one person messages become visible in ``seq`` order and ``seq > last_sent`` never skips one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dispatch.delivery import envelope
from dispatch.storage.queries import queries

Q = queries("outbox")

#: Page size of a replay query.
PAGE = 500


async def after(
    con: asyncpg.Connection, person_id: str, seq: int, limit: int = PAGE
) -> list[dict[str, Any]]:
    """Envelopes of the messages to ``person_id`` with a sequence number above ``seq``."""
    rows = await con.fetch(Q.after, person_id, seq, limit)
    return [envelope(r) for r in rows]


async def after_many(
    con: asyncpg.Connection, people: list[str], positions: list[int], per_person: int
) -> dict[str, list[dict[str, Any]]]:
    """For each person, envelopes after their own position (at most ``per_person``, in order).

    One query for a whole burst of notifications, instead of one per connected person.
    """
    rows = await con.fetch(Q.after_many, people, positions, per_person)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["person_id"], []).append(envelope(r))
    return out


async def last_seq(con: asyncpg.Connection, person_id: str) -> int:
    """The newest sequence number given to this person (0 = none yet)."""
    value: int = await con.fetchval(Q.last_seq, person_id)
    return value


async def record_ack(con: asyncpg.Connection, person_id: str, seq: int, now: datetime) -> int:
    """Remember that the person's client has everything up to ``seq``; returns the stored max."""
    value: int = await con.fetchval(Q.record_ack, person_id, seq, now)
    return value


async def last_ack(con: asyncpg.Connection, person_id: str) -> int:
    """The highest sequence number this person's clients acknowledged (0 = none)."""
    value: int = await con.fetchval(Q.last_ack, person_id)
    return value
