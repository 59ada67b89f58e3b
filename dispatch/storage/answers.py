"""A volunteer's answer to an offer (accept, decline) through the API, in one transaction.

The generic way a POST with an ``Idempotency-Key`` runs costs three commits: the key is
claimed (one commit), the use case runs (another), the response is stored (a third). An answer
is the one write volunteers make in bulk, so it takes a shorter road with the same guarantees:

1. :func:`read_many` — one round trip for the answers that arrive together (the instance's
   read batch, :mod:`dispatch.storage.answer_batch`): for each, the token, what its key
   already holds, and the offer with its row version.
2. :func:`plan` — the checks of any move (:func:`assignments.planned_move`), in Python, on
   that version; the finished response body is then known before anything is written.
3. :func:`commit` — one round trip and one commit (``answer_offers``, migration 0012) for a
   batch of answers (:mod:`dispatch.storage.answer_batch` gathers the answers that arrive
   together): for each, the move of exactly the version read, the key with the finished
   response, the audit row, and for a decline the pair rule; one re-plan request for the
   batch's declines. Each answer is all or nothing: if its row changed meanwhile, or its key
   was taken by a concurrent request, nothing is written for it and its caller reads again
   (and then replays, refuses, or answers anew).

A refused answer (404, 409...) is kept under its key with :func:`refuse`, as the generic
middleware keeps any client error, so a retry gets the same refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg

from dispatch.access import Principal
from dispatch.assignments import Status
from dispatch.audit import AuditContext
from dispatch.storage.assignments import planned_move
from dispatch.storage.idempotency import Claimed, held
from dispatch.storage.queries import queries
from dispatch.storage.tokens import principal_of

Q = queries("answers")


@dataclass(frozen=True, slots=True)
class Seen:
    """What :func:`read` found: the caller, what the key holds, and the offer's row."""

    principal: Principal
    stored: Claimed | None
    row: Any


@dataclass(frozen=True, slots=True)
class Planned:
    """An answer that passed its checks: the move to make and its public views."""

    assignment_id: str
    target: Status
    reason: str
    xmin: int
    before: dict[str, Any]
    after: dict[str, Any]


class Outcome(Enum):
    """How :func:`commit` ended."""

    DONE = "done"  # the answer is stored
    RETRY = "retry"  # nothing written: the row changed or the key was taken; read again


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one answer reads first: its token's hash, its Idempotency-Key, the offer's id."""

    token_hash: bytes
    key: str | None
    assignment_id: str


async def read(
    con: asyncpg.Connection, token_hash: bytes, key: str | None, assignment_id: str
) -> Seen | None:
    """The caller behind ``token_hash``, what ``key`` holds, the offer as it is now.

    ``None`` if the token is unknown or revoked."""
    return (await read_many(con, [Wanted(token_hash, key, assignment_id)]))[0]


async def read_many(con: asyncpg.Connection, wanted: Sequence[Wanted]) -> list[Seen | None]:
    """:func:`read` for many answers in one round trip; one result each, in order."""
    rows = await con.fetch(
        Q.read,
        [w.token_hash for w in wanted],
        [w.key for w in wanted],
        [w.assignment_id for w in wanted],
    )
    out: list[Seen | None] = [None] * len(wanted)
    for row in rows:
        out[row["req"] - 1] = _seen(row)
    return out


def _seen(row: Any) -> Seen:
    stored = held(row, "key_") if row["key_found"] else None
    return Seen(principal_of(row, "token_"), stored, row)


def plan(seen: Seen, assignment_id: str, target: Status, reason: str, now: datetime) -> Planned:
    """Check the answer on the row as read; raises the domain error that refuses it."""
    assert target in (Status.ACCEPTED, Status.DECLINED)
    changes: dict[str, Any] = (
        {"locked": True} if target is Status.ACCEPTED else {"decline_reason": reason}
    )
    before, after = planned_move(
        seen.principal, seen.row, assignment_id, target, now, own_only=True, changes=changes
    )
    return Planned(assignment_id, target, reason, seen.row["row_xmin"], before, after)


@dataclass(frozen=True, slots=True)
class Keyed:
    """The Idempotency-Key of a request and what a retry must repeat (its digest)."""

    key: str
    method: str
    path: str
    digest: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A planned answer ready to be stored: what :func:`commit` writes for one request.

    ``body`` is the response, ``planned.after`` as JSON (also the audit entry's ``after``);
    ``ctx.at`` is the moment of the answer (its ``accepted_at`` / ``declined_at``); a decline
    asks for a re-plan due at ``replan_due``."""

    who: Principal
    ctx: AuditContext
    planned: Planned
    keyed: Keyed | None
    body: bytes
    content_type: str
    replan_due: datetime


async def commit(con: asyncpg.Connection, items: Sequence[Answer]) -> list[Outcome]:
    """Store ``items`` in one transaction (``answer_offers``, migration 0012); one outcome an
    item, in order.

    Each item is all or nothing: its move, the key's response, its audit row (and for a decline
    the pair rule; the batch's declines make one re-plan request). :attr:`Outcome.RETRY` means
    nothing was written for that item (its row changed since the read, or its key was taken).
    Runs outside any transaction (the function's statement is the transaction); an error
    rolls back every item."""
    assert not con.is_in_transaction()
    words = await con.fetchval(
        Q.answer_batch,
        [a.planned.assignment_id for a in items],
        [a.planned.xmin for a in items],
        [a.planned.target.value for a in items],
        [a.ctx.at for a in items],
        [a.planned.reason for a in items],
        [a.ctx.actor for a in items],
        [a.ctx.actor_role for a in items],
        [json.dumps(a.planned.before) for a in items],
        [a.ctx.request_id for a in items],
        [uuid.UUID(a.who.token_id) for a in items],
        [a.keyed.key if a.keyed else None for a in items],
        [a.keyed.method if a.keyed else None for a in items],
        [a.keyed.path if a.keyed else None for a in items],
        [a.keyed.digest if a.keyed else None for a in items],
        [a.body for a in items],
        [a.content_type for a in items],
        [a.replan_due for a in items],
    )
    return [Outcome.RETRY if w in ("stale", "taken") else Outcome.DONE for w in words]


async def refuse(
    con: asyncpg.Connection,
    who: Principal,
    keyed: Keyed,
    status: int,
    body: bytes,
    content_type: str,
) -> bool:
    """Keep a refusal under the request's key; ``False`` if the key was taken meanwhile."""
    row = await con.fetchrow(
        Q.refuse,
        uuid.UUID(who.token_id),
        keyed.key,
        keyed.method,
        keyed.path,
        keyed.digest,
        status,
        body,
        content_type,
    )
    return row is not None
