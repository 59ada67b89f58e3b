"""Roster CSV cells: the column set and the small mini-languages of its cells. Pure.

``skills`` (``first_aid:3;driver:2@2027-01-31``), ``certifications`` (``hazmat@2026-12-31``) and
``availability`` (``mon-fri 08:00-18:00; sat,sun 10:00-14:00``) become the objects that
:class:`dispatch.roster.PersonCreate` validates; :func:`csv_row` turns one whole record into a
``PersonCreate``-shaped dict. The file-level layout is documented in :mod:`dispatch.roster_files`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CSV_COLUMNS",
    "CSV_REQUIRED",
    "CellError",
    "csv_row",
    "parse_certifications",
    "parse_skills",
    "parse_weekly",
]

CSV_COLUMNS = (
    "id",
    "kind",
    "name",
    "jurisdiction",
    "home_lat",
    "home_lon",
    "phone",
    "sms",
    "email",
    "chat",
    "preferred",
    "skills",
    "certifications",
    "availability",
    "timezone",
    "max_hours_per_24h",
    "min_rest_hours",
    "reserve",
    "active",
)
CSV_REQUIRED = ("kind", "name", "jurisdiction", "home_lat", "home_lon")
_PLAIN = ("id", "kind", "name", "jurisdiction", "max_hours_per_24h", "min_rest_hours")
_FLAGS = ("reserve", "active")
_CONTACTS = ("phone", "sms", "email", "chat")
_DAYS = {d: i for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}


class CellError(ValueError):
    """A CSV cell that does not follow its column's mini-language."""

    def __init__(self, column: str, msg: str) -> None:
        super().__init__(msg)
        self.column = column


def _split(cell: str) -> list[str]:
    return [p.strip() for p in cell.split(";") if p.strip()]


def parse_skills(cell: str) -> list[dict[str, Any]]:
    """``first_aid:3;driver:2@2027-01-31`` → skill objects (levels/dates checked later)."""
    out: list[dict[str, Any]] = []
    for part in _split(cell):
        spec, _, expires = part.partition("@")
        name, sep, level = spec.partition(":")
        if not sep or not name.strip() or not level.strip():
            raise CellError("skills", f"{part!r} is not name:level[@YYYY-MM-DD]")
        item: dict[str, Any] = {"name": name.strip(), "level": level.strip()}
        if expires.strip():
            item["expires_on"] = expires.strip()
        out.append(item)
    return out


def parse_certifications(cell: str) -> list[dict[str, Any]]:
    """``first_aid@2026-12-31;hazmat`` → certification objects."""
    out: list[dict[str, Any]] = []
    for part in _split(cell):
        name, _, expires = part.partition("@")
        if not name.strip():
            raise CellError("certifications", f"{part!r} is not name[@YYYY-MM-DD]")
        item: dict[str, Any] = {"name": name.strip()}
        if expires.strip():
            item["expires_on"] = expires.strip()
        out.append(item)
    return out


def _days(spec: str) -> list[int]:
    if spec == "daily":
        return list(range(7))
    days: list[int] = []
    for piece in spec.split(","):
        first, sep, last = piece.strip().partition("-")
        if first not in _DAYS or (sep and last not in _DAYS):
            raise CellError("availability", f"{spec!r}: days are mon..sun, ranges or 'daily'")
        a = _DAYS[first]
        b = _DAYS[last] if sep else a
        days.extend((a + k) % 7 for k in range((b - a) % 7 + 1))
    return days


def parse_weekly(cell: str) -> list[dict[str, Any]]:
    """``mon-fri 08:00-18:00; sat,sun 10:00-14:00`` → weekly window objects."""
    out: list[dict[str, Any]] = []
    for part in _split(cell):
        days, _, times = part.lower().partition(" ")
        spans = [t.strip() for t in times.split(",") if t.strip()]
        if not spans:
            raise CellError("availability", f"{part!r} is not 'DAYS HH:MM-HH:MM'")
        for span in spans:
            start, sep, end = span.partition("-")
            if not sep:
                raise CellError("availability", f"{span!r} is not HH:MM-HH:MM")
            out.extend({"day": d, "start": start, "end": end} for d in _days(days))
    return out


def csv_row(cells: dict[str, str]) -> dict[str, Any]:
    """One CSV record (column → raw cell) as a :class:`PersonCreate`-shaped dict.

    Raises ``ValueError`` (with a ``column`` attribute) for a cell in a wrong mini-language.
    """
    get = cells.get
    person: dict[str, Any] = {}
    for col in _PLAIN + _FLAGS:
        v = (get(col) or "").strip()
        if v:
            person[col] = v.lower() if col in _FLAGS else v
    home: dict[str, str] = {}
    for col, key in (("home_lat", "lat"), ("home_lon", "lon")):
        v = (get(col) or "").strip()
        if v:
            home[key] = v
    person["home"] = home
    contacts: dict[str, Any] = {}
    for col in _CONTACTS:
        v = (get(col) or "").strip()
        if v:
            contacts[col] = v
    if (get("preferred") or "").strip():
        contacts["preferred"] = [p.lower() for p in _split(get("preferred") or "")]
    if contacts:
        person["contacts"] = contacts
    if (get("skills") or "").strip():
        person["skills"] = parse_skills(get("skills") or "")
    if (get("certifications") or "").strip():
        person["certifications"] = parse_certifications(get("certifications") or "")
    availability: dict[str, Any] = {}
    if (get("availability") or "").strip():
        availability["weekly"] = parse_weekly(get("availability") or "")
    if (get("timezone") or "").strip():
        availability["timezone"] = (get("timezone") or "").strip()
    if availability:
        person["availability"] = availability
    return person
