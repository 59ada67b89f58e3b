"""The roster: people who can be sent, their skills, availability and work limits. No I/O.

Rules the dispatch engine relies on (see :func:`effective_skills` and :func:`is_available`):

- A skill counts on a date when its own ``expires_on`` (last valid day, inclusive) has not
  passed and, if the person holds certifications with the skill's name, at least one of them is
  still valid on that date. A certification alone does not grant a skill.
- Weekly windows are local times in ``availability.timezone`` (IANA name, default UTC); a window
  whose end is before its start runs past midnight into the next day, one whose end equals its
  start lasts 24 hours; ``24:00`` is midnight at the end of the day.
- An empty weekly list means "no recurring restriction": available at any time.
- Dated exceptions (absolute instants) override the weekly pattern; where an "unavailable"
  exception overlaps an "available" one, unavailable wins (never call someone who said no).
- An inactive person is never available.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from dispatch.validation import Code, Id, Latitude, Longitude, Name, Slug, Strict

SkillLevel = Annotated[int, Field(ge=1, le=5)]
HoursPer24h = Annotated[float, Field(gt=0, le=24)]
RestHours = Annotated[float, Field(ge=0, le=72)]
ClockTime = Annotated[
    str,
    StringConstraints(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"),
    Field(description="local time HH:MM (24:00 allowed as an end)"),
]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 ()./-]{2,31}$")]
Email = Annotated[
    str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$", max_length=254)
]
Handle = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _known_zone(name: str) -> str:
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_zone)]


class PersonKind(StrEnum):
    """Volunteers are offered work; staff are on duty."""

    VOLUNTEER = "volunteer"
    STAFF = "staff"


class Channel(StrEnum):
    """Ways to reach a person."""

    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    CHAT = "chat"


class HomeLocation(Strict):
    """Where a person usually starts from (personal data)."""

    lat: Latitude
    lon: Longitude


class Contacts(Strict):
    """Contact channels (personal data); ``preferred`` orders the channels to try."""

    phone: Phone | None = None
    sms: Phone | None = None
    email: Email | None = None
    chat: Handle | None = None
    preferred: list[Channel] = Field(default_factory=list, max_length=4)


class Skill(Strict):
    """A skill at a level 1 (basic) to 5 (expert), optionally valid only until a date."""

    name: Slug
    level: SkillLevel
    expires_on: date | None = None


class Certification(Strict):
    """A certificate; while any exists for a skill's name, one must be valid for it to count."""

    name: Slug
    expires_on: date | None = None


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


class WeeklyWindow(Strict):
    """A recurring window on ``day`` (0 = Monday) from ``start`` to ``end`` local time.

    An end before the start runs past midnight into the next day; an end equal to the start
    means 24 hours (``00:00``-``00:00`` is the whole day).
    """

    day: Annotated[int, Field(ge=0, le=6)]
    start: ClockTime
    end: ClockTime


class AvailabilityException(Strict):
    """A dated override of the weekly pattern: ``available`` from ``start`` until ``end``."""

    start: AwareDatetime
    end: AwareDatetime
    available: bool

    @model_validator(mode="after")
    def _ordered(self) -> AvailabilityException:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Availability(Strict):
    """Recurring weekly windows (local to ``timezone``) plus dated exceptions."""

    timezone: TimeZoneName = "UTC"
    weekly: list[WeeklyWindow] = Field(default_factory=list, max_length=100)
    exceptions: list[AvailabilityException] = Field(default_factory=list, max_length=500)


def _unique_skills(skills: list[Skill]) -> list[Skill]:
    names = [s.name for s in skills]
    if len(set(names)) != len(names):
        raise ValueError("each skill may appear only once")
    return skills


class PersonCreate(Strict):
    """Body of ``POST /v1/people`` and one row of an import; ``id`` is generated when absent."""

    id: Id | None = None
    kind: PersonKind
    name: Name
    jurisdiction: Code
    home: HomeLocation
    contacts: Contacts = Field(default_factory=Contacts)
    skills: list[Skill] = Field(default_factory=list, max_length=100)
    certifications: list[Certification] = Field(default_factory=list, max_length=100)
    availability: Availability = Field(default_factory=Availability)
    max_hours_per_24h: HoursPer24h = 12.0
    min_rest_hours: RestHours = 8.0
    reserve: bool = False
    active: bool = True

    @field_validator("skills")
    @classmethod
    def _distinct_skills(cls, skills: list[Skill]) -> list[Skill]:
        return _unique_skills(skills)


class PersonPatch(Strict):
    """Body of ``PATCH /v1/people/{id}``: each given field replaces the stored one wholesale."""

    kind: PersonKind | None = None
    name: Name | None = None
    jurisdiction: Code | None = None
    home: HomeLocation | None = None
    contacts: Contacts | None = None
    skills: list[Skill] | None = Field(default=None, max_length=100)
    certifications: list[Certification] | None = Field(default=None, max_length=100)
    availability: Availability | None = None
    max_hours_per_24h: HoursPer24h | None = None
    min_rest_hours: RestHours | None = None
    reserve: bool | None = None
    active: bool | None = None
    version: int | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> PersonPatch:
        nulled = [f for f in self.model_fields_set if f != "version" and getattr(self, f) is None]
        if nulled:
            raise ValueError(f"these fields cannot be null: {', '.join(sorted(nulled))}")
        return self

    @field_validator("skills")
    @classmethod
    def _distinct_skills(cls, skills: list[Skill] | None) -> list[Skill] | None:
        return None if skills is None else _unique_skills(skills)


class Person(PersonCreate):
    """A stored person, as the engine sees it (built from a row with :func:`person_from_row`)."""

    id: Id
    version: int = 1


class SkillHolder(Protocol):
    """Anything with skills and certifications (a :class:`Person` or a :class:`PersonCreate`)."""

    @property
    def skills(self) -> Sequence[Skill]: ...

    @property
    def certifications(self) -> Sequence[Certification]: ...


class Schedulable(Protocol):
    """Anything with an availability and an active flag."""

    @property
    def availability(self) -> Availability: ...

    @property
    def active(self) -> bool: ...


def new_id() -> str:
    """A fresh person id: ``p-`` and 12 hex digits of a random UUID."""
    return "p-" + uuid.uuid4().hex[:12]


def _valid_on(expires_on: date | None, on_date: date) -> bool:
    return expires_on is None or on_date <= expires_on


def effective_skills(person: SkillHolder, on_date: date) -> dict[str, int]:
    """Skill name → level of the skills that count on ``on_date`` (see the module rules)."""
    certified: dict[str, bool] = {}
    for cert in person.certifications:
        certified[cert.name] = certified.get(cert.name, False) or _valid_on(
            cert.expires_on, on_date
        )
    out: dict[str, int] = {}
    for skill in person.skills:
        if not _valid_on(skill.expires_on, on_date):
            continue
        if not certified.get(skill.name, True):
            continue
        out[skill.name] = max(skill.level, out.get(skill.name, 0))
    return out


def _in_weekly(windows: Sequence[WeeklyWindow], local: datetime) -> bool:
    now = local.weekday() * 1440 + local.hour * 60 + local.minute + local.second / 60
    week = 7 * 1440
    for w in windows:
        start = w.day * 1440 + _minutes(w.start)
        length = (_minutes(w.end) - _minutes(w.start)) % 1440 or 1440
        if (now - start) % week < length:
            return True
    return False


def is_available(person: Schedulable, at: datetime) -> bool:
    """Whether the person may be called at instant ``at`` (timezone-aware)."""
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise ValueError("is_available needs a timezone-aware datetime")
    if not person.active:
        return False
    av = person.availability
    overrides = [e.available for e in av.exceptions if e.start <= at < e.end]
    if overrides:
        return all(overrides)
    if not av.weekly:
        return True
    return _in_weekly(av.weekly, at.astimezone(_zone(av.timezone)))


def person_from_row(row: dict[str, Any]) -> Person:
    """A :class:`Person` from a stored ``people`` row (JSON columns already decoded)."""
    return Person.model_validate(
        {
            "id": row["id"],
            "kind": row["kind"],
            "name": row["name"],
            "jurisdiction": row["jurisdiction_code"],
            "home": {"lat": row["home_lat"], "lon": row["home_lon"]},
            "contacts": row["contacts"],
            "skills": row["skills"],
            "certifications": row["certifications"],
            "availability": row["availability"],
            "max_hours_per_24h": row["max_hours_per_24h"],
            "min_rest_hours": row["min_rest_hours"],
            "reserve": row["reserve"],
            "active": row["active"],
            "version": row["version"],
        },
        strict=False,
    )


def to_json(row: dict[str, Any], show_pii: bool) -> dict[str, Any]:
    """Public representation of a stored person; ``contacts`` and ``home`` only with PII rights."""
    out: dict[str, Any] = {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "jurisdiction": row["jurisdiction_code"],
    }
    if show_pii:
        out["home"] = {"lat": row["home_lat"], "lon": row["home_lon"]}
        out["contacts"] = row["contacts"]
    out.update(
        skills=row["skills"],
        certifications=row["certifications"],
        availability=row["availability"],
        # Stored as ``real``: round away float32 noise (7.3 would read back as 7.300000190...).
        max_hours_per_24h=round(row["max_hours_per_24h"], 4),
        min_rest_hours=round(row["min_rest_hours"], 4),
        reserve=row["reserve"],
        active=row["active"],
        version=row["version"],
        created_at=row["created_at"].isoformat(),
        updated_at=row["updated_at"].isoformat(),
    )
    return out
