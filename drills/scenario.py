"""Scenario files: YAML validated into pydantic models; every error names the field and the line.

A scenario is a roster (generated city, roster file, or a snapshot of a live jurisdiction), the
behaviour of simulated responders, the objectives the response is measured against, and a
timeline of injects at offsets from ``start`` (``"+HH:MM:SS"``). See
``drills/scenarios/urban_flood.yaml`` for a complete example and ``docs``-style comments there.

Errors point at the YAML line: the document is composed once into a node tree (which keeps each
node's start mark) and each pydantic error location is walked down that tree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from dispatch.incidents import Demand
from dispatch.validation import Code, Id, Slug

__all__ = [
    "Behaviour",
    "Inject",
    "Objective",
    "Scenario",
    "ScenarioError",
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
    """A new incident; ``location`` defaults to its jurisdiction's centre (seeded jitter)."""

    type: Literal["incident_reported"]
    id: Id
    kind: Slug = "incident"
    title: str
    jurisdiction: Code
    location: Location | None = None
    priority: Annotated[int, Field(ge=1, le=5)]
    status: Literal["reported", "active"] = "reported"
    demands: list[Demand] = Field(default_factory=list)
    supplies: dict[Slug, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    close_after: Offset | None = None


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


class Scenario(_Model):
    """A drill scenario."""

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

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration)


# ---- errors with lines -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: the field path (``timeline[3].priority``), its YAML line (1-based), why."""

    path: str
    line: int | None
    msg: str


class ScenarioError(ValueError):
    """A malformed scenario; ``issues`` name each bad field and its line."""

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__(
            "\n".join(
                f"{source}:{i.line if i.line is not None else '?'}: {i.path}: {i.msg}"
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


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate YAML text into a :class:`Scenario`, or raise :class:`ScenarioError`."""
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
        issues = []
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            issues.append(Issue(_path(_clean_loc(loc)), _line_of(root, loc), err["msg"]))
        raise ScenarioError(source, issues) from None
    problems = _cross_check(scenario)
    if problems:
        raise ScenarioError(
            source, [Issue(_path(loc), _line_of(root, loc), m) for loc, m in problems]
        )
    return scenario


def _cross_check(s: Scenario) -> list[tuple[list[int | str], str]]:
    """Rules across fields: offsets inside the drill, incidents referenced after they exist."""
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
    return parse_scenario(text, source=str(p)), p.resolve().parent
