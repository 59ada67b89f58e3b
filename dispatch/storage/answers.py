"""A volunteer's answer to an offer (accept, decline) through the API, in one transaction.

The generic way a POST with an ``Idempotency-Key`` runs costs three commits: the key is
claimed (one commit), the use case runs (another), the response is stored (a third). An answer
is the one write volunteers make in bulk, so it takes a shorter road with the same guarantees:

1. :func:`read` — one read-only round trip: the token, what the key already holds, and the
   offer with its row version.
2. :func:`plan` — the checks of any move (:func:`assignments.planned_move`), in Python, on
   that version; the finished response body is then known before anything is written.
3. :func:`commit` — one round trip and one commit (``answer_offer``, migration 0011): the move
   of exactly the version read, the key with the finished response, the audit row, and for a
   decline the pair rule and the re-plan request. All of it or nothing: if the row changed
   meanwhile, or the key was taken by a concurrent request, nothing is written and the caller
   reads again (and then replays, refuses, or answers anew).

A refused answer (404, 409...) is kept under its key with :func:`refuse`, as the generic
middleware keeps any client error, so a retry gets the same refusal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import asyncpg

from dispatch.access import Principal, Role
from dispatch.assignments import Status
from dispatch.audit import AuditContext
from dispatch.storage.assignments import planned_move
from dispatch.storage.queries import queries

Q = queries("answers")

#: The SQLSTATE ``answer_offer`` raises when the Idempotency-Key was taken meanwhile.
KEY_TAKEN = "MU409"


@dataclass(frozen=True, slots=True)
class Stored:
    """What an Idempotency-Key already holds (``status_code`` is ``None`` while it runs)."""

    request_hash: str
    status_code: int | None
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Seen:
    """What :func:`read` found: the caller, what the key holds, and the offer's row."""

    principal: Principal
    stored: Stored | None
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


async def read(
    con: asyncpg.Connection, token_hash: bytes, key: str | None, assignment_id: str
) -> Seen | None:
    """The caller behind ``token_hash``, what ``key`` holds, the offer as it is now.

    ``None`` if the token is unknown or revoked."""
    row = await con.fetchrow(Q.read, token_hash, key, assignment_id)
    if row is None:
        return None
    who = Principal(
        token_id=str(row["token_id"]),
        role=Role(row["token_role"]),
        scope_code=row["token_scope_code"],
        scope_path=row["token_scope_path"],
        person_id=row["token_person_id"],
    )
    stored = None
    if row["key_found"]:
        stored = Stored(
            row["key_request_hash"],
            row["key_status_code"],
            bytes(row["key_response_body"] or b""),
            row["key_content_type"] or "application/json",
        )
    return Seen(who, stored, row)


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


async def commit(
    con: asyncpg.Connection,
    who: Principal,
    ctx: AuditContext,
    planned: Planned,
    keyed: Keyed | None,
    body: bytes,
    content_type: str,
    now: datetime,
    *,
    debounce_s: float,
) -> Outcome:
    """Store the answer, its audit row, the key's response (and for a decline the pair rule and
    the re-plan request) in one transaction; :attr:`Outcome.RETRY` if nothing was written.

    ``body`` is the response: ``planned.after`` as JSON (also the audit entry's ``after``).
    Runs outside any transaction (the function's statement is the transaction)."""
    assert not con.is_in_transaction()
    try:
        outcome = await con.fetchval(
            Q.answer,
            planned.assignment_id,
            planned.xmin,
            planned.target.value,
            now,
            planned.reason,
            ctx.actor,
            ctx.actor_role,
            planned.before,
            body.decode(),  # the response body is ``after`` as JSON
            ctx.request_id,
            uuid.UUID(who.token_id),
            keyed.key if keyed else None,
            keyed.method if keyed else None,
            keyed.path if keyed else None,
            keyed.digest if keyed else None,
            body,
            content_type,
            now + timedelta(seconds=debounce_s),
        )
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == KEY_TAKEN:
            return Outcome.RETRY
        raise
    return Outcome.RETRY if outcome == "stale" else Outcome.DONE


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
