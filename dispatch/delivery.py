"""Delivery to volunteers, the pure part: the message envelope, SSE framing, resume positions,
client (WebSocket) messages, coordinator event filtering, and how self-service availability
changes rewrite a person's dated exceptions. No I/O; the wire protocol is documented in
:mod:`api.streams`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime

from dispatch.access import Principal
from dispatch.errors import FieldError, ValidationFailed
from dispatch.roster import Availability, AvailabilityException
from dispatch.validation import Strict

#: How long an explicit ``until`` may reach ahead.
MAX_AHEAD = timedelta(days=7)
#: "Unavailable until further notice" (``until: null``): stored with this end, and cut short by
#: the next availability change, check-in or check-out.
OPEN_ENDED = timedelta(days=365)
#: A check-in lasts this long unless the person checks out (a shift).
SHIFT = timedelta(hours=12)
#: SSE ``retry:`` hint sent first on every stream, in milliseconds.
RETRY_MS = 3000
#: At most this many exceptions are kept (the model's limit); the oldest past ones go first.
MAX_EXCEPTIONS = 500


def envelope(row: Any) -> dict[str, Any]:
    """The message envelope of one outbox row (``seq, kind, payload, exercise, created_at``)."""
    return {
        "seq": row["seq"],
        "kind": row["kind"],
        "payload": row["payload"],
        "exercise": row["exercise"],
        "created_at": row["created_at"].isoformat(),
    }


def to_text(data: Any) -> str:
    """Compact JSON (one line: SSE ``data:`` must not contain newlines)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def sse_event(data: str, *, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE event: ``id:``, ``event:``, ``data:`` lines and a blank line."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {part}" for part in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def sse_message(env: dict[str, Any]) -> bytes:
    """An outbox envelope as an SSE event: id = seq, event = kind, data = the envelope."""
    return sse_event(to_text(env), event=env["kind"], event_id=env["seq"])


def sse_comment(text: str) -> bytes:
    """A comment line (heartbeat): ignored by clients, keeps proxies from timing out."""
    return f": {text}\n\n".encode()


def sse_retry(ms: int = RETRY_MS) -> bytes:
    """The reconnection delay hint."""
    return f"retry: {ms}\n\n".encode()


def resume_position(last_event_id: str | None, since: str | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` (preferred) or ``?since=``; 0 = all.

    Raises :class:`ValidationFailed` for anything but a non-negative integer.
    """
    for value, loc in ((last_event_id, "/Last-Event-ID"), (since, "/since")):
        if value is None:
            continue
        text = value.strip()
        if not text.isdigit() or len(text) > 18:
            raise ValidationFailed(
                f"{loc[1:]} must be a non-negative integer sequence number",
                errors=[FieldError(loc, "not a sequence number")],
            )
        return int(text)
    return 0


@dataclass(frozen=True, slots=True)
class Ack:
    """A client's acknowledgement of every message up to ``seq``."""

    seq: int


def parse_client_message(text: str) -> Ack:
    """Parse a WebSocket text frame from a client; only ``{"ack": seq}`` is understood.

    Raises :class:`ValueError` with a message for the error frame otherwise.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or set(data) != {"ack"}:
        raise ValueError('unknown message; the only client message is {"ack": seq}')
    seq = data["ack"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError("ack must be a non-negative integer")
    return Ack(seq)


def event_visible(who: Principal, event: dict[str, Any]) -> bool:
    """Whether a coordinator event belongs on ``who``'s stream (scope by jurisdiction path).

    Events without a path (plans span jurisdictions; summaries hold counts only) go to all.
    """
    path = event.get("path")
    if path is None:
        return True
    return isinstance(path, str) and who.in_scope(path)


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """What a coordinator client receives for an event."""
    return {
        "kind": event.get("kind"),
        "id": event.get("id"),
        "jurisdiction_path": event.get("path"),
        "summary": event.get("summary") or {},
    }


# --- availability -------------------------------------------------------------------------


class AvailabilityUpdate(Strict):
    """Body of ``PUT /v1/me/availability``.

    ``available`` needs ``until``; ``unavailable`` with ``until: null`` means until further
    notice. ``until`` must lie in the future and at most seven days ahead.
    """

    status: Literal["available", "unavailable"]
    until: AwareDatetime | None = None


def window_end(body: AvailabilityUpdate, now: datetime) -> datetime:
    """The end of the window ``body`` asks for, validated against ``now``."""
    if body.until is None:
        if body.status == "available":
            raise ValidationFailed(
                "say until when you are available",
                errors=[FieldError("/until", "required when status is available")],
            )
        return now + OPEN_ENDED
    if body.until <= now:
        raise ValidationFailed(
            "until must be in the future", errors=[FieldError("/until", "not in the future")]
        )
    if body.until > now + MAX_AHEAD:
        raise ValidationFailed(
            "until may be at most 7 days ahead",
            errors=[FieldError("/until", "more than 7 days ahead")],
        )
    return body.until


def set_window(
    av: Availability, start: datetime, end: datetime, available: bool, *, now: datetime
) -> Availability:
    """``av`` with ``[start, end)`` set to ``available``: the newest statement wins there.

    Exceptions overlapping the window are cut to the parts outside it (needed because an
    overlapping "unavailable" would otherwise win); the rest is kept untouched.
    """
    kept: list[AvailabilityException] = []
    for e in av.exceptions:
        if e.end <= start or e.start >= end:
            kept.append(e)
            continue
        if e.start < start:
            kept.append(e.model_copy(update={"end": start}))
        if e.end > end:
            kept.append(e.model_copy(update={"start": end}))
    kept.append(AvailabilityException(start=start, end=end, available=available))
    if len(kept) > MAX_EXCEPTIONS:
        past = sorted((e for e in kept if e.end <= now), key=lambda e: e.end)
        drop = {id(e) for e in past[: len(kept) - MAX_EXCEPTIONS]}
        kept = [e for e in kept if id(e) not in drop]
    kept.sort(key=lambda e: (e.start, e.end))
    return av.model_copy(update={"exceptions": kept})


def check_in(av: Availability, now: datetime) -> Availability:
    """On duty from ``now`` for a shift (until check-out)."""
    return set_window(av, now, now + SHIFT, True, now=now)


def check_out(av: Availability, now: datetime) -> Availability:
    """Off duty from ``now`` until the end of the shift being ended (a shift when none was).

    Ending only the check-in window would leave someone with no weekly restriction available;
    checking out means "do not call me", so the rest of the shift becomes unavailable.
    """
    current = [e.end for e in av.exceptions if e.available and e.start <= now < e.end]
    end = max(current) if current else now + SHIFT
    return set_window(av, now, end, False, now=now)


def availability_json(av: Availability) -> dict[str, Any]:
    """The stored (JSON) form of an availability."""
    return av.model_dump(mode="json")
