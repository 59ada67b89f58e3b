"""Scenario files: YAML validated into pydantic models; every error names the field and the line.

A scenario is a roster (generated city, roster file, or a snapshot of a live jurisdiction), the
behaviour of simulated responders, the objectives the response is measured against, and a
timeline of injects at offsets from ``start`` (``"+HH:MM:SS"``). See
``drills/scenarios/urban_flood.yaml`` for a complete example and ``docs``-style comments there.

Two sections expand into more injects when the file is read: ``generate`` (many similar
incidents per jurisdiction, seeded, optionally repeated daily: ``heatwave.yaml``,
``epidemic_lockdown.yaml``) and ``replay`` (a CSV of real calls, :mod:`drills.replay`:
``replay_example.yaml``). The runner sees one timeline in time order.

Errors point at the YAML line: the document is composed once into a node tree (which keeps each
node's start mark) and each pydantic error location is walked down that tree.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from dispatch.incidents import Demand
from dispatch.validation import Code, Id, Slug

__all__ = [
    "Behaviour",
    "Generator",
    "Inject",
    "Issue",
    "Objective",
    "Replay",
    "Scenario",
    "ScenarioError",
    "expand_generator",
    "load_scenario",
    "parse_scenario",
]

_OFFSET = re.compile(r"^\+?(\d{1,3}):([0-5]\d):([0-5]\d)$")


def parse_offset(value: Any) -> int:
    """``"+HH:MM:SS"`` (or whole seconds) → seconds after the scenario start."""
    if isinstance(value, bool):
        raise ValueError("an offset is written '+HH:MM:SS'")
    if isinstance(value, int):
        # YAML 1.1 reads an unquoted 1:30:00 as sexagesimal seconds; accept that too.
        if value < 0:
            raise ValueError("an offset cannot be negative")
        return value
    if isinstance(value, str):
        m = _OFFSET.match(value.strip())
        if m:
            h, mi, s = (int(g) for g in m.groups())
            return h * 3600 + mi * 60 + s
    raise ValueError("an offset is written '+HH:MM:SS' (e.g. '+01:30:00')")


def format_offset(seconds: float) -> str:
    """Seconds → ``+HH:MM:SS``."""
    s = round(seconds)
    return f"+{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


_TZ_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_timezone(value: str) -> tzinfo:
    """An IANA zone name (``Asia/Shanghai``) or a fixed offset (``+08:00``, ``UTC``)."""
    v = value.strip()
    if v.upper() in ("UTC", "Z"):
        return UTC
    m = _TZ_OFFSET.match(v)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name such as 'Asia/Shanghai', or '+08:00')"
        ) from None


Offset = Annotated[int, BeforeValidator(parse_offset)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- roster --------------------------------------------------------------------------------


class Generated(_Model):
    """A generated demo city (:func:`dispatch.demo_city.generate`): people, depots and stock."""

    people: Annotated[int, Field(ge=10, le=200_000)]
    seed: int = 1
    districts: Annotated[int, Field(ge=1, le=8)] = 8


class Snapshot(_Model):
    """A copy of the live roster of a jurisdiction's subtree (people, depots, stock, policies)."""

    jurisdiction: Code


class Roster(_Model):
    """Exactly one of ``generated``, ``file`` or ``snapshot``.

    A roster ``file`` (JSON or CSV, as ``muster import people`` reads it) is loaded onto the
    jurisdictions, depots and stock of a generated city of the same ``city_seed`` with no
    people, so its people's jurisdiction codes must be demo-city codes.
    """

    generated: Generated | None = None
    file: str | None = None
    snapshot: Snapshot | None = None
    city_seed: int = 1

    @model_validator(mode="after")
    def _exactly_one(self) -> Roster:
        given = [k for k in ("generated", "file", "snapshot") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'generated', 'file' or 'snapshot'")
        return self


class Location(_Model):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class DepotSpec(_Model):
    """An extra depot for the drill (on top of the roster's)."""

    id: Id
    name: str
    jurisdiction: Code
    location: Location
    stock: dict[Slug, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


# ---- responders ------------------------------------------------------------------------------


class AnswerDelay(_Model):
    """How long a responder takes to answer an offer."""

    distribution: Literal["lognormal", "exponential", "fixed"] = "lognormal"
    median_s: Annotated[float, Field(gt=0, le=86_400)] = 45.0
    sigma: Annotated[float, Field(ge=0, le=5)] = 0.8


class Behaviour(_Model):
    """How simulated responders behave (defaults; overrides refine them per skill or group)."""

    accept_probability: Share = 0.85
    answer_delay: AnswerDelay = Field(default_factory=AnswerDelay)
    no_show_rate: Share = 0.05
    travel_speed_noise: Annotated[float, Field(ge=0, le=2)] = 0.2
    departure_delay_s: Annotated[float, Field(ge=0, le=7200)] = 60.0


class Override(_Model):
    """Behaviour for offers matching ``skill`` and/or people of ``jurisdiction`` / ``kind``."""

    skill: Slug | None = None
    jurisdiction: Code | None = None
    kind: Literal["staff", "volunteer"] | None = None
    accept_probability: Share | None = None
    answer_delay: AnswerDelay | None = None
    no_show_rate: Share | None = None
    travel_speed_noise: Annotated[float, Field(ge=0, le=2)] | None = None
    departure_delay_s: Annotated[float, Field(ge=0, le=7200)] | None = None

    @model_validator(mode="after")
    def _matches_something(self) -> Override:
        if self.skill is None and self.jurisdiction is None and self.kind is None:
            raise ValueError("an override needs 'skill', 'jurisdiction' or 'kind' to match")
        return self


class Responders(_Model):
    default: Behaviour = Field(default_factory=Behaviour)
    overrides: list[Override] = Field(default_factory=list)


class EngineSpec(_Model):
    """Engine knobs for the drill (the live defaults unless set)."""

    solve_time_limit_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    debounce_s: Annotated[float, Field(ge=0, le=60)] = 1.0


# ---- objectives --------------------------------------------------------------------------------

_WITHIN = ("staffed_within", "first_offer_within", "supplied_within")
_BOUNDS = ("expiry_rate_at_most", "decline_rate_at_most", "fairness_at_least")


class Objective(_Model):
    """A measurable target, e.g. ``{metric: staffed_within, priority: 1, minutes: 15, share: 0.9}``.

    - ``staffed_within``: share of demanded people slots (of ``priority``) filled by an accepted
      offer within ``minutes`` of the report.
    - ``first_offer_within``: share of incidents whose first offer went out within ``minutes``.
    - ``supplied_within``: share of demanded supply units reserved within ``minutes``.
    - ``expiry_rate_at_most`` / ``decline_rate_at_most``: share of offers, at most ``value``.
    - ``fairness_at_least``: Jain's index of hours worked by deployed people, at least ``value``.
    """

    metric: Literal[
        "staffed_within",
        "first_offer_within",
        "supplied_within",
        "expiry_rate_at_most",
        "decline_rate_at_most",
        "fairness_at_least",
    ]
    priority: Annotated[int, Field(ge=1, le=5)] | None = None
    minutes: Annotated[float, Field(gt=0, le=10_000)] | None = None
    share: Share | None = None
    value: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Objective:
        if self.metric in _WITHIN and (self.minutes is None or self.share is None):
            raise ValueError(f"'{self.metric}' needs 'minutes' and 'share'")
        if self.metric in _BOUNDS and self.value is None:
            raise ValueError(f"'{self.metric}' needs 'value'")
        return self

    def text(self) -> str:
        """The objective in words."""
        pri = f"priority-{self.priority} " if self.priority is not None else ""
        if self.metric == "staffed_within":
            return f"{self.share:.0%} of {pri}demand staffed within {self.minutes:g} min"
        if self.metric == "first_offer_within":
            return (
                f"{self.share:.0%} of {pri}incidents get a first offer within {self.minutes:g} min"
            )
        if self.metric == "supplied_within":
            return f"{self.share:.0%} of {pri}supply demand reserved within {self.minutes:g} min"
        if self.metric == "expiry_rate_at_most":
            return f"at most {self.value:.0%} of offers expire unanswered"
        if self.metric == "decline_rate_at_most":
            return f"at most {self.value:.0%} of offers declined"
        return f"Jain fairness of hours worked at least {self.value:.2f}"


# ---- injects ---------------------------------------------------------------------------------


class _Inject(_Model):
    at: Offset
    note: str = ""


class IncidentReported(_Inject):
    """A new incident; ``location`` defaults to its jurisdiction's centre (seeded jitter).

    ``close_after`` closes it that long after the report (whatever happened);
    ``close_after_arrival`` closes it that long after the first responder is on scene (a welfare
    visit, a delivery unloaded), whichever comes first.

    Give ``jurisdiction``, ``location`` or both. Without a jurisdiction the incident belongs to
    the community (leaf jurisdiction) whose centre is nearest to ``location``, found when the
    drill runs (so it works for snapshot rosters too); replayed calls use this.
    """

    type: Literal["incident_reported"]
    id: Id
    kind: Slug = "incident"
    title: str
    jurisdiction: Code | None = None
    location: Location | None = None
    priority: Annotated[int, Field(ge=1, le=5)]
    status: Literal["reported", "active"] = "reported"
    demands: list[Demand] = Field(default_factory=list)
    supplies: dict[Slug, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    close_after: Offset | None = None
    close_after_arrival: Offset | None = None

    @model_validator(mode="after")
    def _placed(self) -> IncidentReported:
        if self.jurisdiction is None and self.location is None:
            raise ValueError("give 'jurisdiction', 'location' or both")
        return self


class IncidentUpdated(_Inject):
    type: Literal["incident_updated"]
    id: Id
    priority: Annotated[int, Field(ge=1, le=5)] | None = None
    title: str | None = None
    demands: list[Demand] | None = None
    supplies: dict[Slug, Annotated[int, Field(gt=0)]] | None = None


class IncidentClosed(_Inject):
    type: Literal["incident_closed"]
    id: Id
    reason: str = ""


class ModeChanged(_Inject):
    """A jurisdiction's level raised or lowered (``routine`` stands it down)."""

    type: Literal["mode_changed"]
    jurisdiction: Code
    mode: Literal["routine", "emergency"]
    level: Literal["IV", "III", "II", "I"] | None = None
    reason: str = "drill"


class DepotLost(_Inject):
    """A depot can no longer be used; its open reservations are cancelled."""

    type: Literal["depot_lost"]
    depot: Id
    reason: str = "depot lost"


class StockDestroyed(_Inject):
    """Units destroyed at a depot: ``items`` (item → units) and/or a ``share`` of everything."""

    type: Literal["stock_destroyed"]
    depot: Id
    items: dict[Slug, Annotated[int, Field(gt=0)]] | None = None
    share: Share | None = None
    reason: str = "stock destroyed"

    @model_validator(mode="after")
    def _what(self) -> StockDestroyed:
        if self.items is None and self.share is None:
            raise ValueError("give 'items' or 'share'")
        return self


class TravelSlowed(_Inject):
    """Roads in an area slowed: travel to incidents there takes ``factor`` times longer."""

    type: Literal["travel_slowed"]
    jurisdiction: Code
    factor: Annotated[float, Field(ge=1, le=10)]
    until: Offset | None = None


class VolunteersUnavailable(_Inject):
    """A share of a group (jurisdiction subtree, optional skill) cannot respond until ``until``."""

    type: Literal["volunteers_unavailable"]
    jurisdiction: Code
    skill: Slug | None = None
    share: Share
    until: Offset | None = None
    response: Literal["no_answer", "decline"] = "no_answer"


Inject = Annotated[
    IncidentReported
    | IncidentUpdated
    | IncidentClosed
    | ModeChanged
    | DepotLost
    | StockDestroyed
    | TravelSlowed
    | VolunteersUnavailable,
    Field(discriminator="type"),
]


# ---- generated incidents and historical replay --------------------------------------------


class Repeat(_Model):
    """Repeat a generator ``times`` times, each ``every`` later than the previous."""

    every: Offset
    times: Annotated[int, Field(ge=1, le=366)]

    @model_validator(mode="after")
    def _moves(self) -> Repeat:
        if self.every <= 0 and self.times > 1:
            raise ValueError("'every' must be positive to repeat")
        return self


OffsetRange = tuple[Offset, Offset]


class Generator(_Model):
    """Many similar incidents, expanded into ``incident_reported`` injects when the file is read.

    ``jurisdictions`` maps each jurisdiction (usually a community) to how many incidents it gets
    (e.g. the registered elderly people living alone there, or its sealed compounds); each is
    reported at a seeded moment inside ``between`` and placed near the jurisdiction's centre.
    ``close_after`` and ``close_after_arrival`` (see ``incident_reported``) are each one offset
    or a ``[shortest, longest]`` range (seeded draw). With
    ``repeat`` the whole batch comes back every ``every`` (daily deliveries). Ids are
    ``<id_prefix>-<jurisdiction>-<n>`` (``<id_prefix>-<round>-<jurisdiction>-<n>`` repeated).
    """

    id_prefix: Code
    kind: Slug = "incident"
    title: str
    note: str = ""
    jurisdictions: Annotated[
        dict[Code, Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=1)
    ]
    between: OffsetRange
    priority: Annotated[int, Field(ge=1, le=5)]
    status: Literal["reported", "active"] = "reported"
    demands: list[Demand] = Field(default_factory=list)
    supplies: dict[Slug, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    close_after: Offset | OffsetRange | None = None
    close_after_arrival: Offset | OffsetRange | None = None
    repeat: Repeat | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Generator:
        if self.between[1] < self.between[0]:
            raise ValueError("'between' is [earliest, latest]: latest is before earliest")
        for name in ("close_after", "close_after_arrival"):
            value = getattr(self, name)
            if isinstance(value, tuple) and value[1] < value[0]:
                raise ValueError(f"'{name}' is [shortest, longest]: longest is shorter")
        if sum(self.jurisdictions.values()) * (self.repeat.times if self.repeat else 1) > 20_000:
            raise ValueError("at most 20,000 incidents per generator")
        return self


class ReplayColumns(_Model):
    """Which CSV column holds what (column names as in the CSV's header row)."""

    at: str
    lat: str
    lon: str
    type: str
    id: str | None = None
    priority: str | None = None
    jurisdiction: str | None = None
    note: str | None = None


class ReplayType(_Model):
    """What a call of one type becomes: an incident with these demands and supplies."""

    kind: Slug | None = None
    title: str | None = None
    priority: Annotated[int, Field(ge=1, le=5)] = 3
    demands: list[Demand] = Field(default_factory=list)
    supplies: dict[Slug, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    close_after: Offset | None = None
    close_after_arrival: Offset | None = None


class Replay(_Model):
    """A CSV of real incidents replayed as ``incident_reported`` injects (see drills/replay.py).

    ``file`` is relative to the scenario file. ``columns`` maps the fields to the CSV's column
    names; ``types`` maps each value of the type column to an incident (case-insensitive). With
    ``shift_to_start`` (default) the earliest call lands at ``offset`` after ``start`` and the
    others keep their spacing; otherwise timestamps are taken as they are and must fall inside
    the drill. Timestamps are ISO 8601 unless ``time_format`` (``strptime``) is given; ones
    without a UTC offset are read in ``timezone`` (an IANA name or ``+HH:MM``; default: the
    offset of ``start``). Without a jurisdiction column each call goes to the community whose
    centre is nearest to it.
    """

    file: str
    columns: ReplayColumns
    types: Annotated[dict[str, ReplayType], Field(min_length=1)]
    time_format: str | None = None
    timezone: str | None = None
    shift_to_start: bool = True
    offset: Offset = 0
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    id_prefix: Annotated[
        str, StringConstraints(pattern=r"^([A-Za-z0-9][A-Za-z0-9_.:-]{0,40})?$")
    ] = "call-"
    close_after: Offset | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timezone(value)
        return value

    @model_validator(mode="after")
    def _types_distinct(self) -> Replay:
        folded = [t.strip().lower() for t in self.types]
        if len(set(folded)) != len(folded):
            raise ValueError("two 'types' differ only in case or spaces")
        return self


class Scenario(_Model):
    """A drill scenario.

    ``generate`` and ``replay`` are expanded into ``timeline`` when the scenario is read (and
    then emptied), so the runner only ever sees a timeline, in time order.
    """

    name: Code
    description: str = ""
    start: AwareDatetime
    duration: Offset
    seed: int = 1
    roster: Roster
    depots: list[DepotSpec] = Field(default_factory=list)
    responders: Responders = Field(default_factory=Responders)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    objectives: list[Objective] = Field(default_factory=list)
    coverage_step: Offset = 300
    timeline: list[Inject] = Field(default_factory=list)
    generate: list[Generator] = Field(default_factory=list)
    replay: Replay | None = None

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration)


# ---- errors with lines -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: the field path (``timeline[3].priority``), its line (1-based), why.

    ``source`` names the file when it is not the scenario itself (a replayed CSV: then ``path``
    names the column and ``line`` the CSV line).
    """

    path: str
    line: int | None
    msg: str
    source: str | None = None


class ScenarioError(ValueError):
    """A malformed scenario; ``issues`` name each bad field and its line."""

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__(
            "\n".join(
                f"{i.source or source}:{i.line if i.line is not None else '?'}: {i.path}: {i.msg}"
                for i in self.issues
            )
        )


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The line of the deepest YAML node along ``loc`` (pydantic's union tags are skipped)."""
    if root is None:
        return None
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if found is None:
                continue  # a union tag or a missing field: stay on the enclosing mapping
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
        elif isinstance(node, yaml.MappingNode) and isinstance(part, int):
            continue
        else:
            break
    return int(node.start_mark.line) + 1


def _clean_loc(loc: Sequence[int | str]) -> list[int | str]:
    return [
        p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p in _TAGS))
    ]


_TAGS = {
    "incident_reported",
    "incident_updated",
    "incident_closed",
    "mode_changed",
    "depot_lost",
    "stock_destroyed",
    "travel_slowed",
    "volunteers_unavailable",
}


def parse_scenario(text: str, source: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate YAML text into a :class:`Scenario`, or raise :class:`ScenarioError`.

    ``generate`` blocks and the ``replay`` CSV (read relative to ``base_dir``; a scenario given
    as bare text, without a directory, cannot replay a file) are expanded into the timeline.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError(source, [Issue("(document)", line, str(exc.problem))]) from None
    if not isinstance(data, dict):
        raise ScenarioError(source, [Issue("(document)", 1, "a scenario is a YAML mapping")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            source,
            [
                Issue(_path(_clean_loc(err["loc"])), _line_of(root, err["loc"]), err["msg"])
                for err in exc.errors(include_url=False)
            ],
        ) from None

    problems: list[tuple[list[int | str], str]] = []
    issues: list[Issue] = []
    # Every expanded incident with where it came from (for errors): (inject, YAML loc or CSV line).
    extra: list[tuple[IncidentReported, list[int | str] | Issue]] = []
    for k, g in enumerate(scenario.generate):
        for inj in expand_generator(g, scenario.seed, k):
            extra.append((inj, ["generate", k]))
    if scenario.replay is not None:
        from drills import replay  # replay builds on this module's models

        if base_dir is None:
            problems.append(
                (["replay", "file"], "a replayed CSV needs a scenario file to be relative to")
            )
        else:
            try:
                for call in replay.load(
                    scenario.replay, base_dir, scenario.start, scenario.duration
                ):
                    extra.append((call.inject, Issue("row", call.line, "", call.source)))
            except replay.ReplayError as exc:
                problems += exc.fields
                issues += exc.rows
    # Without the replayed calls, references to them cannot be checked: don't report them.
    known = None if problems or issues else {inj.id: inj.at for inj, _ in extra}
    problems += _cross_check(scenario, known)
    problems += _check_expanded(scenario, extra, issues)
    issues = [Issue(_path(loc), _line_of(root, loc), m) for loc, m in problems] + issues
    if issues:
        raise ScenarioError(source, issues)
    if not extra:
        return scenario
    merged: list[tuple[int, int, int, Any]] = [
        (inj.at, 0, n, inj) for n, inj in enumerate(scenario.timeline)
    ]
    merged += [(inj.at, 1, n, inj) for n, (inj, _) in enumerate(extra)]
    timeline = [e[3] for e in sorted(merged, key=lambda e: e[:3])]
    return scenario.model_copy(update={"timeline": timeline, "generate": [], "replay": None})


def expand_generator(g: Generator, seed: int, index: int) -> list[IncidentReported]:
    """The incidents of one ``generate`` block, in file order (seeded: same seed, same list)."""
    rng = random.Random(f"{seed if g.seed is None else g.seed}|generate|{index}|{g.id_prefix}")
    rounds = g.repeat.times if g.repeat is not None else 1
    out: list[IncidentReported] = []
    for r in range(rounds):
        shift = r * g.repeat.every if g.repeat is not None else 0
        for code, n in g.jurisdictions.items():
            for i in range(n):
                at = shift + rng.randint(g.between[0], g.between[1])
                close, stay = (
                    rng.randint(*v) if isinstance(v, tuple) else v
                    for v in (g.close_after, g.close_after_arrival)
                )
                ident = f"{g.id_prefix}-{code}-{i + 1}"
                if rounds > 1:
                    ident = f"{g.id_prefix}-{r + 1}-{code}-{i + 1}"
                out.append(
                    IncidentReported.model_construct(
                        at=at,
                        note=g.note,
                        type="incident_reported",
                        id=ident,
                        kind=g.kind,
                        title=g.title,
                        jurisdiction=code,
                        location=None,
                        priority=g.priority,
                        status=g.status,
                        demands=list(g.demands),
                        supplies=dict(g.supplies),
                        close_after=close,
                        close_after_arrival=stay,
                    )
                )
    return out


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _check_expanded(
    s: Scenario,
    extra: Sequence[tuple[IncidentReported, list[int | str] | Issue]],
    rows: list[Issue],
) -> list[tuple[list[int | str], str]]:
    """Generated and replayed incidents: valid ids, unique across the scenario, inside the drill.

    Problems of generators come back as YAML locations; problems of replayed calls are appended
    to ``rows`` (CSV lines).
    """
    out: list[tuple[list[int | str], str]] = []
    seen = {inj.id for inj in s.timeline if isinstance(inj, IncidentReported)}
    flagged: set[tuple[int | str, ...]] = set()

    def report(where: list[int | str] | Issue, field: str, msg: str) -> None:
        if isinstance(where, Issue):
            rows.append(Issue(where.path, where.line, msg, where.source))
            return
        key = (*where, field)
        if key not in flagged:  # one message per generator and field
            flagged.add(key)
            out.append(([*where, field], msg))

    for inj, where in extra:
        if not _ID.match(inj.id):
            report(where, "id_prefix", f"makes the id {inj.id!r}, which is not a valid id")
        elif inj.id in seen:
            report(where, "id_prefix", f"incident {inj.id!r} is reported twice")
        seen.add(inj.id)
        if isinstance(where, list) and inj.at > s.duration:
            field = "repeat" if inj.at > s.generate[int(where[1])].between[1] else "between"
            report(
                where, field, f"reaches after the end of the drill ({format_offset(s.duration)})"
            )
    return out


def _cross_check(
    s: Scenario, expanded: dict[str, int] | None = None
) -> list[tuple[list[int | str], str]]:
    """Rules across fields: offsets inside the drill, incidents referenced after they exist.

    ``expanded`` holds the incidents (id → offset) of ``generate`` and ``replay``, which
    scripted injects may update or close; ``None`` when they could not be expanded.
    """
    out: list[tuple[list[int | str], str]] = []
    reported: dict[str, int] = {}
    for k, inj in enumerate(s.timeline):
        if inj.at > s.duration:
            out.append(
                (["timeline", k, "at"], f"after the end of the drill ({format_offset(s.duration)})")
            )
        if isinstance(inj, IncidentReported):
            if inj.id in reported:
                out.append((["timeline", k, "id"], f"incident {inj.id!r} is reported twice"))
            reported[inj.id] = inj.at
        elif isinstance(inj, IncidentUpdated | IncidentClosed):
            at = reported.get(inj.id)
            if at is None:
                if expanded is None:
                    continue  # the generated or replayed incidents are unknown (they failed)
                at = expanded.get(inj.id)
            if at is None or at > inj.at:
                out.append(
                    (["timeline", k, "id"], f"no incident {inj.id!r} reported before this inject")
                )
        elif isinstance(inj, ModeChanged):
            if (inj.mode == "emergency") != (inj.level is not None):
                out.append(
                    (["timeline", k, "level"], "emergency needs a level; routine takes none")
                )
        if isinstance(inj, TravelSlowed | VolunteersUnavailable) and inj.until is not None:
            if inj.until <= inj.at:
                out.append((["timeline", k, "until"], "must be after 'at'"))
    return out


def load_scenario(path: str | Path) -> tuple[Scenario, Path]:
    """Read and validate a scenario file; returns it with its directory (for relative files)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError(str(p), [Issue("(file)", None, exc.strerror or str(exc))]) from None
    base = p.resolve().parent
    return parse_scenario(text, source=str(p), base_dir=base), base
