"""How long a person's availability stays as it is now. Pure; used to cache re-plan inputs.

:func:`dispatch.roster.is_available` answers for one instant. The engine asks it for every
person at every re-plan, although the answer only changes at a few instants: where a dated
exception starts or ends, and where a weekly window opens or closes. :func:`availability_span`
returns the answer together with the first instant at which it may change, so a caller can
reuse the answer until then.

Why whole minutes are enough for the weekly windows: windows start and end on whole local
minutes and :func:`~dispatch.roster.is_available` compares whole-minute positions in the week
(the seconds never change the outcome), so within one local minute the weekly answer is
constant. With a UTC offset of whole minutes (every zone today), a local minute is a UTC minute.
Across a change of UTC offset (summer time) only the current minute is promised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch.roster import Schedulable, _minutes, _zone, is_available

__all__ = ["availability_span"]

_WEEK = 7 * 1440
_MAX_SPAN = timedelta(days=1)


def availability_span(person: Schedulable, at: datetime) -> tuple[bool, datetime | None]:
    """``(is_available(person, at), until)``: the answer holds on ``[at, until)``.

    ``until`` is ``None`` when nothing in the person's availability can change the answer any
    more. It is always later than ``at``.
    """
    value = is_available(person, at)
    if not person.active:
        return value, None
    av = person.availability
    until: datetime | None = None
    for e in av.exceptions:
        for b in (e.start, e.end):
            if b > at and (until is None or b < until):
                until = b
    if av.weekly:
        zone = _zone(av.timezone)
        local = at.astimezone(zone)
        offset = local.utcoffset()
        base = at.astimezone(UTC).replace(second=0, microsecond=0)
        next_minute = base + timedelta(minutes=1)
        if offset is None or offset % timedelta(minutes=1):
            weekly_until = at  # a zone offset in seconds: promise nothing
        else:
            here = local.weekday() * 1440 + local.hour * 60 + local.minute
            steps = _WEEK
            for w in av.weekly:
                start = w.day * 1440 + _minutes(w.start)
                length = (_minutes(w.end) - _minutes(w.start)) % 1440 or 1440
                for edge in (start, start + length):
                    steps = min(steps, (edge - here - 1) % _WEEK + 1)
            weekly_until = min(base + timedelta(minutes=steps), base + _MAX_SPAN)
            if weekly_until > next_minute and weekly_until.astimezone(zone).utcoffset() != offset:
                weekly_until = next_minute  # the offset changes before then
        until = weekly_until if until is None else min(until, weekly_until)
    if until is not None and until <= at:
        # Only this instant is certain; callers treat it as "ask again next time".
        return value, at + timedelta(microseconds=1)
    return value, until
