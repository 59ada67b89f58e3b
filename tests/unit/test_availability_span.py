"""``availability_span``: the availability answer and how long it holds, against ``is_available``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch import roster as dom
from dispatch.availability import availability_span

ZONES = ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
T0 = datetime(2026, 3, 1, tzinfo=UTC)  # a month that holds summer-time changes in two zones


def person(availability: dict[str, object], active: bool = True) -> dom.PersonCreate:
    return dom.PersonCreate.model_validate(
        {
            "kind": "volunteer",
            "name": "Ann",
            "jurisdiction": "pd",
            "home": {"lat": 31.2, "lon": 121.5},
            "availability": availability,
            "active": active,
        },
        strict=False,
    )


clock = st.tuples(st.integers(0, 24), st.integers(0, 59)).map(
    lambda hm: "24:00" if hm[0] == 24 else f"{hm[0]:02d}:{hm[1]:02d}"
)
window = st.fixed_dictionaries(
    {"day": st.integers(0, 6), "start": clock.filter(lambda c: c != "24:00"), "end": clock}
)
offset_s = st.integers(0, 40 * 86400).map(lambda s: timedelta(seconds=s))


@st.composite
def exception(draw: st.DrawFn) -> dict[str, object]:
    start = T0 + draw(offset_s) + timedelta(microseconds=draw(st.integers(0, 999_999)))
    return {
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=draw(st.integers(1, 3 * 86400)))).isoformat(),
        "available": draw(st.booleans()),
    }


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    weekly=st.lists(window, max_size=4),
    exceptions=st.lists(exception(), max_size=3),
    at=offset_s,
    micro=st.integers(0, 999_999),
    probes=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
)
def test_the_answer_holds_until_the_span_ends(
    zone: str,
    weekly: list[dict[str, object]],
    exceptions: list[dict[str, object]],
    at: timedelta,
    micro: int,
    probes: list[float],
) -> None:
    p = person({"timezone": zone, "weekly": weekly, "exceptions": exceptions})
    when = T0 + at + timedelta(microseconds=micro)
    value, until = availability_span(p, when)
    assert value == dom.is_available(p, when)
    assert until is None or until > when
    horizon = until if until is not None else when + timedelta(days=30)
    last = horizon - timedelta(microseconds=1)  # the end of the span is the likeliest miss
    for probe in [when + (horizon - when) * f for f in probes] + [last]:
        if when <= probe < horizon:
            assert dom.is_available(p, probe) == value, (when, probe, until)


def test_spans_are_long_for_windows_and_open_ended_without_restrictions() -> None:
    at = datetime(2026, 7, 13, 9, 30, tzinfo=UTC)  # a Monday
    always = person({"weekly": [], "exceptions": []})
    assert availability_span(always, at) == (True, None)
    office = person({"timezone": "UTC", "weekly": [{"day": 0, "start": "08:00", "end": "18:00"}]})
    assert availability_span(office, at) == (True, datetime(2026, 7, 13, 18, 0, tzinfo=UTC))
    evening = datetime(2026, 7, 13, 19, 0, tzinfo=UTC)
    # closed until next Monday 08:00, but never promised for more than a day at a time
    assert availability_span(office, evening) == (False, evening + timedelta(days=1))
    gone = person({"weekly": []}, active=False)
    assert availability_span(gone, at) == (False, None)


def test_a_summer_time_change_inside_the_span_shortens_it() -> None:
    berlin = person(
        {"timezone": "Europe/Berlin", "weekly": [{"day": 6, "start": "01:00", "end": "05:00"}]}
    )
    # Sunday 29 March 2026 00:30 UTC = 01:30 CET; clocks jump to CEST at 01:00 UTC.
    at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    value, until = availability_span(berlin, at)
    assert value is True
    assert until == datetime(2026, 3, 29, 0, 31, tzinfo=UTC)
