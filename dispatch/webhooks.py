"""Webhooks for gateways: endpoint models, the signature scheme, the retry schedule, and which
messages an endpoint gets. Pure: no I/O (the sender is dispatch/services/webhook_dispatcher.py).

The scheme (documented for gateway authors in docs/webhooks.md)::

    X-Muster-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

with one ``v1=`` per valid secret (two during a secret rotation's grace period).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, field_validator

from dispatch.access import path_within
from dispatch.validation import Code, Strict

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Muster-Signature"
DELIVERY_HEADER = "X-Muster-Delivery"
EVENT_HEADER = "X-Muster-Event"
EXERCISE_HEADER = "X-Muster-Exercise"
ATTEMPT_HEADER = "X-Muster-Attempt"
USER_AGENT = "Muster-Webhooks/1"

Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Description = Annotated[str, StringConstraints(max_length=500)]


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials or fragment.

    Plain http is allowed on purpose: gateways on the same host or LAN, and tests. Credentials in
    the URL are refused because URLs are shown in listings; the signature authenticates instead.
    """
    if len(url) > 2000:
        raise ValueError("at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http and https URLs are allowed")
    if not parts.hostname:
        raise ValueError("the URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not allowed")
    if parts.fragment:
        raise ValueError("a fragment is not allowed")
    if port == 0:
        raise ValueError("port 0 is not allowed")
    if any(c.isspace() for c in url):
        raise ValueError("whitespace is not allowed")
    return url


def _check_kinds(kinds: list[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    if not kinds:
        raise ValueError("give at least one kind, or leave the field out for every kind")
    if len(set(kinds)) != len(kinds):
        raise ValueError("kinds must be unique")
    return sorted(kinds)


class EndpointCreate(Strict):
    """Body of ``POST /v1/webhooks``."""

    url: str
    jurisdiction: Code
    kinds: list[Kind] | None = Field(default=None, max_length=50)
    description: Description = ""
    enabled: bool = True

    _url = field_validator("url")(check_url)
    _kinds = field_validator("kinds")(_check_kinds)


class EndpointPatch(Strict):
    """Body of ``PATCH /v1/webhooks/{id}``: only the fields given change (``kinds: null`` = all)."""

    url: str | None = None
    kinds: list[Kind] | None = Field(default=None, max_length=50)
    description: Description | None = None
    enabled: bool | None = None
    version: int | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            raise ValueError("the URL cannot be removed")
        return check_url(v)

    _kinds = field_validator("kinds")(_check_kinds)


class RotateSecret(Strict):
    """Body of ``POST /v1/webhooks/{id}/rotate-secret`` (optional)."""

    # How long the old secret keeps signing next to the new one (0 = replace at once).
    grace_seconds: int = Field(default=0, ge=0, le=7 * 24 * 3600)


class DeliveryStatus:
    """Lifecycle of one delivery: pending → delivered, or pending → dead (→ pending by replay)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    ALL = (PENDING, DELIVERED, DEAD)


def new_secret() -> str:
    """A fresh signing secret (256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def receives(endpoint_path: str, kinds: list[str] | None, person_path: str, kind: str) -> bool:
    """Whether an endpoint gets a message: the recipient lives in the endpoint's jurisdiction
    subtree and the kind passes the filter. The outbox trigger in 0007_webhooks.sql applies
    the same rule in SQL, in the message's transaction."""
    return path_within(person_path, endpoint_path) and (kinds is None or kind in kinds)


# --- signature ------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` with ``secret``."""
    msg = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signature_header(secrets_: list[str], timestamp: int, body: bytes) -> str:
    """``t=<ts>,v1=<sig>[,v1=<sig of the previous secret>]``."""
    parts = [f"t={timestamp}"] + [f"v1={signature(s, timestamp, body)}" for s in secrets_]
    return ",".join(parts)


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """The receiver's check (reference implementation): some v1 matches and t is recent."""
    ts: int | None = None
    sigs: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            ts = int(value)
        elif key == "v1":
            sigs.append(value)
    if ts is None or abs(now - ts) > tolerance_s:
        return False
    expected = signature(secret, ts, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)


def envelope(message: dict[str, Any], delivery_id: str) -> bytes:
    """The request body: the message envelope, compact JSON (signed byte for byte)."""
    body = {
        "seq": message["seq"],
        "kind": message["kind"],
        "person": message["person_id"],
        "payload": message["payload"],
        "exercise": message["exercise"],
        "created_at": message["created_at"].isoformat(),
        "delivery": delivery_id,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def request_headers(
    secrets_: list[str],
    timestamp: int,
    body: bytes,
    *,
    delivery_id: str,
    kind: str,
    exercise: bool,
    attempt: int,
) -> dict[str, str]:
    """Every header of one delivery request."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secrets_, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: kind,
        EXERCISE_HEADER: "true" if exercise else "false",
        ATTEMPT_HEADER: str(attempt),
    }


# --- retry schedule ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter", capped, and a dead-letter after ``max_attempts``.

    After failed attempt ``k`` (1-based) the wait is ``d * (0.5 + 0.5 * r)`` with
    ``d = min(cap, base * 2**(k-1))`` and ``r`` from the given RNG in [0, 1). Windows of
    consecutive attempts touch but do not overlap, so waits never shrink below the cap.
    """

    base_s: float = 5.0
    cap_s: float = 600.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.max_attempts < 1:
            raise ValueError("backoff needs base_s > 0, cap_s >= base_s and max_attempts >= 1")

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after ``attempts`` failed attempts."""
        d = min(self.cap_s, self.base_s * 2 ** (attempts - 1))
        return timedelta(seconds=d * (0.5 + 0.5 * rng.random()))

    def next_attempt(self, attempts: int, now: datetime, rng: random.Random) -> datetime | None:
        """When to try again after ``attempts`` failures, or ``None``: dead-letter it."""
        if attempts >= self.max_attempts:
            return None
        return now + self.delay(attempts, rng)


# --- representations --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """Public view of an endpoint (never its secret)."""
    return {
        "id": row["id"],
        "url": row["url"],
        "jurisdiction": row["jurisdiction_code"],
        "kinds": list(row["kinds"]) if row["kinds"] is not None else None,
        "description": row["description"],
        "enabled": row["enabled"],
        "previous_secret_expires_at": _iso(row["previous_secret_expires_at"]),
        "version": row["version"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def delivery_to_json(row: dict[str, Any]) -> dict[str, Any]:
    """Public view of a delivery."""
    return {
        "id": str(row["id"]),
        "endpoint": row["endpoint_id"],
        "message": {
            "outbox_id": row["outbox_id"],
            "person": row["person_id"],
            "seq": row["seq"],
            "kind": row["kind"],
            "exercise": row["exercise"],
        },
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]),
        "last_attempt_at": _iso(row["last_attempt_at"]),
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "delivered_at": _iso(row["delivered_at"]),
        "dead_at": _iso(row["dead_at"]),
        "created_at": row["created_at"].isoformat(),
    }
