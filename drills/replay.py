"""Historical replay: a CSV of real incidents becomes a timeline of ``incident_reported`` injects.

A trainer exports a day of calls (timestamp, latitude, longitude, type, and optionally an id,
a priority, a jurisdiction and a free-text note) from their call-taking system; the scenario's
``replay:`` section (:class:`drills.scenario.Replay`) names the columns and maps each call type
to an incident (demands, supplies, priority, how long it stays open). :func:`convert` turns the
CSV text into injects: pure, no I/O; :func:`load` only adds reading the file.

Errors name the CSV line and column (an unknown type, a bad timestamp, a latitude out of range,
a duplicate id, a call outside the drill); a column mapping that names no column of the header
is reported against the scenario's ``replay.columns`` field instead.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from drills.scenario import (
    IncidentReported,
    Issue,
    Location,
    Replay,
    ReplayType,
    format_offset,
    parse_timezone,
)

__all__ = ["Call", "ReplayError", "convert", "load"]

#: Row errors reported before giving up on a file (the rest are counted).
MAX_ROW_ISSUES = 20

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Call:
    """One replayed call: its incident inject, and the CSV file and line it came from."""

    inject: IncidentReported
    source: str
    line: int


class ReplayError(ValueError):
    """The CSV cannot be replayed.

    ``fields``: problems with the scenario's ``replay`` section, as (YAML location, message);
    ``rows``: problems with CSV rows, as :class:`~drills.scenario.Issue` (source = the CSV,
    path = the column, line = the CSV line).
    """

    def __init__(
        self, fields: list[tuple[list[int | str], str]], rows: list[Issue] | None = None
    ) -> None:
        self.fields = fields
        self.rows = rows or []
        lines = [f"replay.{'.'.join(map(str, loc[1:]))}: {m}" for loc, m in fields]
        lines += [f"{i.source}:{i.line}: {i.path}: {i.msg}" for i in self.rows]
        super().__init__("\n".join(lines))


def load(spec: Replay, base_dir: Path, start: datetime, duration: int) -> list[Call]:
    """Read ``spec.file`` (relative to ``base_dir``) and :func:`convert` it."""
    path = base_dir / spec.file
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise ReplayError(
            [(["replay", "file"], f"cannot read {str(path)!r}: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ReplayError(
            [(["replay", "file"], f"{spec.file!r} is not UTF-8 text ({exc.reason})")]
        ) from None
    return convert(spec, text, start=start, duration=duration, source=spec.file)


def _kind(type_name: str) -> str:
    """A type name as an incident kind (a slug): ``"Medical call"`` → ``medical_call``."""
    slug = re.sub(r"[^a-z0-9]+", "_", type_name.strip().lower()).strip("_")[:64]
    return slug or "incident"


@dataclass(slots=True)
class _Row:
    line: int
    when: datetime
    lat: float
    lon: float
    type_name: str
    type: ReplayType
    ident: str | None
    priority: int | None
    jurisdiction: str | None
    note: str


class _Rows:
    """Collects row issues, at most :data:`MAX_ROW_ISSUES` of them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[Issue] = []
        self.dropped = 0

    def add(self, line: int, column: str, msg: str) -> None:
        if len(self.issues) < MAX_ROW_ISSUES:
            self.issues.append(Issue(f"column {column!r}", line, msg, self.source))
        else:
            self.dropped += 1

    def result(self) -> list[Issue]:
        if self.dropped:
            last = self.issues[-1]
            more = Issue("(file)", last.line, f"… and {self.dropped} more problems", self.source)
            return [*self.issues, more]
        return self.issues


def _timestamp(value: str, spec: Replay, zone: tzinfo) -> datetime:
    if spec.time_format is not None:
        try:
            when = datetime.strptime(value, spec.time_format)
        except ValueError:
            raise ValueError(f"{value!r} does not match time_format {spec.time_format!r}") from None
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 timestamp (e.g. 2024-07-18 14:03:00);"
                " set replay.time_format for other layouts"
            ) from None
    return when.replace(tzinfo=zone) if when.tzinfo is None else when


def _coordinate(value: str, name: str, limit: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(x) or not -limit <= x <= limit:
        raise ValueError(f"{name} {value} is out of range (-{limit:g} … {limit:g})")
    return x


def convert(
    spec: Replay, text: str, *, start: datetime, duration: int, source: str = "<csv>"
) -> list[Call]:
    """The calls of a CSV text as injects, in time order (ties: file order).

    ``start`` and ``duration`` are the drill's: calls must land inside it. Raises
    :class:`ReplayError` listing every problem found (up to :data:`MAX_ROW_ISSUES` rows).
    """
    reader = csv.reader(io.StringIO(text), delimiter=spec.delimiter)
    header = next(reader, None)
    if header is None:
        raise ReplayError([], [Issue("(file)", 1, "the file is empty (no header row)", source)])
    names = [h.strip() for h in header]
    index = {n: k for k, n in enumerate(names) if n}
    mapping = {k: v for k, v in spec.columns.model_dump().items() if v is not None}
    missing: list[tuple[list[int | str], str]] = [
        (
            ["replay", "columns", field],
            f"no column {col!r} in {source} (its columns: {', '.join(names)})",
        )
        for field, col in mapping.items()
        if col.strip() not in index
    ]
    if missing:
        raise ReplayError(missing)
    col = {field: index[c.strip()] for field, c in mapping.items()}
    types = {name.strip().lower(): (name, t) for name, t in spec.types.items()}
    zone = parse_timezone(spec.timezone) if spec.timezone is not None else start.tzinfo
    assert zone is not None  # the scenario's start is an aware datetime

    issues = _Rows(source)
    rows: list[_Row] = []
    ids: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank line

        def cell(field: str, cells: list[str] = cells) -> str:
            k = col.get(field)
            return cells[k].strip() if k is not None and k < len(cells) else ""

        ok = True
        values: dict[str, str] = {}
        for field in ("at", "lat", "lon", "type"):
            values[field] = cell(field)
            if not values[field]:
                issues.add(line, mapping[field], "empty")
                ok = False
        when: datetime | None = None
        lat = lon = 0.0
        if values["at"]:
            try:
                when = _timestamp(values["at"], spec, zone)
            except ValueError as exc:
                issues.add(line, mapping["at"], str(exc))
                ok = False
        for field, name, limit in (("lat", "latitude", 90.0), ("lon", "longitude", 180.0)):
            if values[field]:
                try:
                    x = _coordinate(values[field], name, limit)
                except ValueError as exc:
                    issues.add(line, mapping[field], str(exc))
                    ok = False
                else:
                    lat, lon = (x, lon) if field == "lat" else (lat, x)
        found = types.get(values["type"].lower()) if values["type"] else None
        if values["type"] and found is None:
            known = ", ".join(sorted(spec.types))
            issues.add(
                line,
                mapping["type"],
                f"unknown type {values['type']!r} (replay.types maps: {known})",
            )
            ok = False
        priority: int | None = None
        if "priority" in col and cell("priority"):
            raw = cell("priority")
            if raw.isdigit() and 1 <= int(raw) <= 5:
                priority = int(raw)
            else:
                issues.add(line, mapping["priority"], f"priority {raw!r} is not 1 … 5")
                ok = False
        ident: str | None = None
        if "id" in col:
            raw = cell("id")
            if not raw:
                issues.add(line, mapping["id"], "empty")
                ok = False
            else:
                ident = f"{spec.id_prefix}{raw}"
                if not _ID.match(ident):
                    issues.add(
                        line,
                        mapping["id"],
                        f"makes the incident id {ident!r}: letters, digits and _ . : - only,"
                        " at most 64 characters",
                    )
                    ok = False
                elif ident in ids:
                    issues.add(line, mapping["id"], f"id {raw!r} also on line {ids[ident]}")
                    ok = False
                else:
                    ids[ident] = line
        jurisdiction: str | None = None
        if "jurisdiction" in col and cell("jurisdiction"):
            jurisdiction = cell("jurisdiction")
            if not _CODE.match(jurisdiction):
                issues.add(
                    line, mapping["jurisdiction"], f"{jurisdiction!r} is not a jurisdiction code"
                )
                ok = False
        if ok and when is not None and found is not None:
            rows.append(
                _Row(
                    line,
                    when,
                    lat,
                    lon,
                    found[0],
                    found[1],
                    ident,
                    priority,
                    jurisdiction,
                    cell("note"),
                )
            )
    if not rows and not issues.issues:
        issues.add(1, mapping["at"], "the file has a header but no calls")
    if issues.issues:
        raise ReplayError([], issues.result())

    # Offsets: keep the calls' spacing, anchored at `offset` (shift) or at the drill's start.
    anchor = min(r.when for r in rows)
    calls: list[tuple[int, int, _Row]] = []
    for r in rows:
        if spec.shift_to_start:
            at = spec.offset + round((r.when - anchor).total_seconds())
        else:
            at = round((r.when - start).total_seconds())
        if at < 0:
            issues.add(r.line, mapping["at"], f"{r.when.isoformat()} is before the drill starts")
        elif at > duration:
            issues.add(
                r.line,
                mapping["at"],
                f"lands at {format_offset(at)}, after the end of the drill"
                f" ({format_offset(duration)})",
            )
        calls.append((at, r.line, r))
    if issues.issues:
        raise ReplayError([], issues.result())
    calls.sort(key=lambda c: (c[0], c[1]))
    width = max(4, len(str(len(calls))))
    out: list[Call] = []
    for n, (at, line, r) in enumerate(calls, start=1):
        t = r.type
        title = t.title or f"{r.type_name} (replayed call)"
        note = f"{source}:{line}" + (f": {r.note}" if r.note else "")
        inject = IncidentReported(
            at=at,
            note=note,
            type="incident_reported",
            id=r.ident or f"{spec.id_prefix}{n:0{width}d}",
            kind=t.kind or _kind(r.type_name),
            title=title,
            jurisdiction=r.jurisdiction,
            location=Location(lat=r.lat, lon=r.lon),
            priority=r.priority or t.priority,
            demands=list(t.demands),
            supplies=dict(t.supplies),
            close_after=t.close_after if t.close_after is not None else spec.close_after,
            close_after_arrival=t.close_after_arrival,
        )
        out.append(Call(inject, source, line))
    return out
