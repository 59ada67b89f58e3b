"""Stored answers for POST requests carrying an ``Idempotency-Key``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from dispatch.access import Principal
from dispatch.storage.queries import queries
from dispatch.storage.tokens import principal_of
from dispatch.tokens import hash_secret

Q = queries("idempotency")


@dataclass(frozen=True, slots=True)
class Claimed:
    """What an Idempotency-Key holds: an earlier request with the same key (``status_code`` is
    ``None`` while it runs)."""

    request_hash: str
    status_code: int | None
    body: bytes
    content_type: str


async def claim(
    con: asyncpg.Connection, token_id: str, key: str, method: str, path: str, digest: str
) -> Claimed | None:
    """Reserve ``key``; ``None`` means this request is first and should run."""
    row = await con.fetchrow(Q.claim, uuid.UUID(token_id), key, method, path, digest)
    return _claimed(row, digest)


async def authenticate_and_claim(
    con: asyncpg.Connection, secret: str, key: str, method: str, path: str, digest: str
) -> tuple[Principal, Claimed | None] | None:
    """:func:`tokens.authenticate` and :func:`claim` in one statement (one round trip).

    ``None`` if the token is unknown or revoked; otherwise the principal and the claim result.
    """
    row = await con.fetchrow(
        Q.authenticate_and_claim, hash_secret(secret), key, method, path, digest
    )
    if row is None:
        return None
    return principal_of(row), _claimed(row, digest)


def _claimed(row: asyncpg.Record, digest: str) -> Claimed | None:
    if row["inserted"]:
        return None
    if row["request_hash"] is None:
        # The first claimant released the key between our insert and select; treat as running.
        return Claimed(digest, None, b"", "application/json")
    return held(row)


def held(row: asyncpg.Record, prefix: str = "") -> Claimed:
    """What a key holds, from a row of its ``idempotency_keys`` columns (each named with
    ``prefix`` in front)."""
    return Claimed(
        row[f"{prefix}request_hash"],
        row[f"{prefix}status_code"],
        bytes(row[f"{prefix}response_body"] or b""),
        row[f"{prefix}content_type"] or "application/json",
    )


async def complete(
    con: asyncpg.Connection, token_id: str, key: str, status: int, body: bytes, content_type: str
) -> None:
    """Store the answer so a retry can replay it."""
    await con.execute(Q.complete, uuid.UUID(token_id), key, status, body, content_type)


async def release(con: asyncpg.Connection, token_id: str, key: str) -> None:
    """Forget an unfinished claim (the request failed unexpectedly), so a retry can run."""
    await con.execute(Q.release, uuid.UUID(token_id), key)
