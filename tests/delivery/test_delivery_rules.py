"""Pure delivery rules (framing, resume positions, client messages, availability windows) and
the database side of fan-out: one short notification per hundred recipients, not per message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch import delivery
from dispatch.errors import ValidationFailed
from dispatch.roster import Availability, AvailabilityException
from dispatch.storage import engine as engine_store
from tests.engine.conftest import build_city, roster

T0 = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


def test_an_sse_message_carries_seq_kind_and_the_envelope_on_one_line() -> None:
    env = {
        "seq": 7,
        "kind": "offer",
        "payload": {"note": "line one\nline two"},
        "exercise": True,
        "created_at": T0.isoformat(),
    }
    frame = delivery.sse_message(env).decode()
    assert frame.startswith("id: 7\nevent: offer\ndata: {")
    assert frame.endswith("}\n\n") and frame.count("\n") == 4  # newline escaped inside JSON
    assert delivery.sse_comment("ping") == b": ping\n\n"
    assert delivery.sse_retry() == b"retry: 3000\n\n"


def test_resume_prefers_last_event_id_and_refuses_garbage() -> None:
    assert delivery.resume_position(None, None) == 0
    assert delivery.resume_position("12", "3") == 12
    assert delivery.resume_position(None, "3") == 3
    for bad in ("-1", "abc", "1.5", "9" * 30):
        with pytest.raises(ValidationFailed):
            delivery.resume_position(bad, None)


def test_only_acks_are_understood_from_clients() -> None:
    assert delivery.parse_client_message('{"ack": 4}') == delivery.Ack(4)
    for bad in ('{"ack": -1}', '{"ack": true}', '{"ack": "4"}', '{"ping": 1}', "[]", "nope"):
        with pytest.raises(ValueError):
            delivery.parse_client_message(bad)


def test_a_new_window_cuts_overlapping_exceptions_and_keeps_the_rest() -> None:
    h = timedelta(hours=1)
    av = Availability(
        exceptions=[
            AvailabilityException(start=T0 - 2 * h, end=T0 + 2 * h, available=False),
            AvailabilityException(start=T0 + 10 * h, end=T0 + 11 * h, available=False),
        ]
    )
    out = delivery.set_window(av, T0, T0 + h, True, now=T0)
    assert [(e.start, e.end, e.available) for e in out.exceptions] == [
        (T0 - 2 * h, T0, False),
        (T0, T0 + h, True),
        (T0 + h, T0 + 2 * h, False),
        (T0 + 10 * h, T0 + 11 * h, False),
    ]


def test_check_out_ends_the_shift_it_was_in() -> None:
    on = delivery.check_in(Availability(), T0)
    later = T0 + timedelta(hours=3)
    off = delivery.check_out(on, later)
    assert [(e.start, e.end, e.available) for e in off.exceptions] == [
        (T0, later, True),
        (later, T0 + delivery.SHIFT, False),
    ]
    # Without a check-in, check-out means "not for a shift from now".
    fresh = delivery.check_out(Availability(), T0)
    assert [(e.start, e.end, e.available) for e in fresh.exceptions] == [
        (T0, T0 + delivery.SHIFT, False)
    ]


def test_availability_until_must_be_future_and_within_a_week() -> None:
    ok = delivery.AvailabilityUpdate(status="available", until=T0 + timedelta(days=7))
    assert delivery.window_end(ok, T0) == T0 + timedelta(days=7)
    open_ended = delivery.AvailabilityUpdate(status="unavailable")
    assert delivery.window_end(open_ended, T0) == T0 + delivery.OPEN_ENDED
    for body in (
        delivery.AvailabilityUpdate(status="available", until=T0),
        delivery.AvailabilityUpdate(status="available", until=T0 + timedelta(days=7, seconds=1)),
        delivery.AvailabilityUpdate(status="available"),
    ):
        with pytest.raises(ValidationFailed):
            delivery.window_end(body, T0)


async def test_many_messages_in_one_statement_notify_once_per_hundred_recipients(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    people = roster(n_per_street=125)
    await build_city(client, admin_token, people)
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    try:
        await listener.add_listener("muster_outbox", lambda *a: got.put_nowait(a[3]))
        async with pool.acquire() as con, con.transaction():
            # Two messages each for 250 people in one statement.
            await engine_store.send_many(
                con,
                "offer",
                [(p["id"], {"k": k}) for p in people for k in range(2)],
                now=T0,
                exercise=False,
            )
        payloads = [await asyncio.wait_for(got.get(), 10) for _ in range(3)]
        ids = [i for p in payloads for i in p.split(",")]
        assert sorted(ids) == sorted(p["id"] for p in people)  # each person once
        assert max(len(p.encode()) for p in payloads) < 8000
        # And nothing more: PostgreSQL delivers notifications in commit order, so one sent
        # after that commit is the next thing the listener gets.
        await pool.execute("SELECT pg_notify('muster_outbox', 'barrier')")
        assert await asyncio.wait_for(got.get(), 10) == "barrier"
    finally:
        await listener.close()
