"""Routine and emergency modes per jurisdiction, and the policies they put in force.

A jurisdiction runs in ``routine`` mode or in ``emergency`` mode at a level from IV (lowest) to
I (highest). Each node may carry its *own* setting; what applies to it is its *effective* mode:

    **A node's effective mode is the most severe of its own setting and the settings of all
    its ancestors.** A district in emergency II puts every street, community and grid cell
    below it in (at least) emergency II; the city going to I puts the whole tree in I. A node
    cannot be *less* severe than an ancestor: a street that sets ``routine`` while its district
    is in II stays in II, and a street may be *more* severe than its district (a local
    emergency). A node without any setting, under ancestors without any, is in routine.

    The *source* of an effective mode is the node whose own setting produced it; when several
    nodes on the path hold that same mode, the nearest one to the node (the node itself first)
    is named, because standing that one down alone would not change the answer of the others.
    With no emergency on the path, the source is the node itself.

The mode decides the :class:`ModePolicy` in force (who may be called, how fast offers expire,
re-plan cadence, travel limits, solver weights, suspension of routine work); the default
policies are data (:data:`DEFAULT_POLICIES`), stored in ``mode_policies`` and editable by
admins. Pure rules, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import total_ordering
from itertools import pairwise
from typing import Annotated, Any, NamedTuple, Self

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from dispatch.validation import Strict


class ModeKind(StrEnum):
    """Routine work or an emergency."""

    ROUTINE = "routine"
    EMERGENCY = "emergency"


class Level(StrEnum):
    """Emergency level, IV (lowest) … I (highest)."""

    IV = "IV"
    III = "III"
    II = "II"
    I = "I"  # noqa: E741 - the level is called "I"

    @property
    def severity(self) -> int:
        """1 for IV … 4 for I."""
        return _LEVEL_SEVERITY[self]


_LEVEL_SEVERITY = {Level.IV: 1, Level.III: 2, Level.II: 3, Level.I: 4}

# Mode keys in order of severity: the keys of the policy table.
MODE_KEYS: tuple[str, ...] = ("routine", "IV", "III", "II", "I")


@total_ordering
@dataclass(frozen=True, slots=True)
class Mode:
    """A mode value: ``routine``, or ``emergency`` with a level. Ordered by severity."""

    mode: ModeKind
    level: Level | None = None

    def __post_init__(self) -> None:
        if (self.mode is ModeKind.EMERGENCY) != (self.level is not None):
            raise ValueError("an emergency mode needs a level; routine has none")

    @classmethod
    def routine(cls) -> Mode:
        return cls(ModeKind.ROUTINE)

    @classmethod
    def emergency(cls, level: Level | str) -> Mode:
        return cls(ModeKind.EMERGENCY, Level(level))

    @classmethod
    def from_key(cls, key: str) -> Mode:
        """The mode named by a policy key (``routine``, ``IV`` … ``I``)."""
        return cls.routine() if key == "routine" else cls.emergency(key)

    @classmethod
    def from_columns(cls, mode: str, level: str | None) -> Mode:
        """The mode stored as ``mode``/``level`` columns."""
        return cls(ModeKind(mode), Level(level) if level is not None else None)

    @property
    def severity(self) -> int:
        """0 for routine, 1 for emergency IV … 4 for emergency I."""
        return 0 if self.level is None else self.level.severity

    @property
    def key(self) -> str:
        """The policy key: ``routine`` or the level."""
        return "routine" if self.level is None else self.level.value

    @property
    def is_emergency(self) -> bool:
        return self.mode is ModeKind.EMERGENCY

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Mode):
            return NotImplemented
        return self.severity < other.severity

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "level": self.level.value if self.level else None}


ROUTINE = Mode.routine()

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class ModeChange(Strict):
    """Body of ``PUT /v1/jurisdictions/{code}/mode``.

    ``{"mode": "emergency", "level": "II", "reason": "..."}`` or ``{"mode": "routine",
    "reason": "..."}``; ``level`` is required for an emergency and refused for routine.
    ``version`` (optional) is the version of the node's own setting the caller saw (0 = none).
    """

    mode: ModeKind
    level: Level | None = Field(default=None, validate_default=True)
    reason: Reason
    version: int | None = Field(default=None, ge=0)

    @field_validator("level", mode="after")
    @classmethod
    def _level_iff_emergency(cls, level: Level | None, info: ValidationInfo) -> Level | None:
        # A field validator (not a model validator) so the error points at /level.
        mode = info.data.get("mode")
        if mode is ModeKind.EMERGENCY and level is None:
            raise ValueError("a level (IV, III, II or I) is required for emergency mode")
        if mode is ModeKind.ROUTINE and level is not None:
            raise ValueError("routine mode has no level")
        return level

    @property
    def target(self) -> Mode:
        """The requested mode."""
        return Mode(self.mode, self.level)


class EffectiveMode(NamedTuple):
    """The mode in force at a node and the code of the node it comes from."""

    mode: Mode
    source: str

    def to_json(self) -> dict[str, Any]:
        return {**self.mode.to_json(), "source": self.source}


def effective_mode(own_modes_along_path: Sequence[tuple[str, Mode | None]]) -> EffectiveMode:
    """The effective mode of the last node of a root → node path of ``(code, own setting)``.

    The most severe setting on the path wins; ties go to the node nearest the end (see the
    module docstring). ``None`` means the node has no setting of its own.
    """
    if not own_modes_along_path:
        raise ValueError("the path must contain at least the node itself")
    best = EffectiveMode(ROUTINE, own_modes_along_path[-1][0])
    for code, own in reversed(own_modes_along_path):
        if own is not None and own > best.mode:
            best = EffectiveMode(own, code)
    return best


def path_codes(path: str) -> list[str]:
    """Codes along a materialised path such as ``/sh/pd/pd-lujiazui``, root first."""
    return [c for c in path.split("/") if c]


def effective_by_path(
    paths: Mapping[str, str], own: Mapping[str, Mode]
) -> dict[str, EffectiveMode]:
    """Effective modes of the nodes in ``paths`` (code → path) given every own setting."""
    return {
        code: effective_mode([(c, own.get(c)) for c in path_codes(path)])
        for code, path in paths.items()
    }


class TransitionKind(StrEnum):
    """How a node's effective mode moved."""

    ESCALATED = "escalated"  # more severe (routine → emergency, or a higher level)
    DE_ESCALATED = "de_escalated"  # still an emergency, at a lower level
    STOOD_DOWN = "stood_down"  # emergency → routine: emergency work must be demobilised


@dataclass(frozen=True, slots=True)
class ModeTransition:
    """A change of one node's effective mode."""

    code: str
    before: Mode
    after: Mode
    kind: TransitionKind


def mode_transition(
    old_effective_by_node: Mapping[str, Mode], new_effective_by_node: Mapping[str, Mode]
) -> list[ModeTransition]:
    """Nodes whose effective mode changed, sorted by code; a missing node counts as routine."""
    out = []
    for code in sorted(set(old_effective_by_node) | set(new_effective_by_node)):
        before = old_effective_by_node.get(code, ROUTINE)
        after = new_effective_by_node.get(code, ROUTINE)
        if after > before:
            kind = TransitionKind.ESCALATED
        elif after < before:
            kind = TransitionKind.DE_ESCALATED if after.is_emergency else TransitionKind.STOOD_DOWN
        else:
            continue
        out.append(ModeTransition(code, before, after, kind))
    return out


class Pool(StrEnum):
    """Groups of people a mode may call, from closest to farthest."""

    ON_DUTY_STAFF = "on_duty_staff"
    STAFF = "staff"
    VOLUNTEERS = "volunteers"
    RESERVES = "reserves"
    MUTUAL_AID = "mutual_aid"


class MutualAid(StrEnum):
    """Which neighbouring jurisdictions' people mutual aid reaches."""

    NONE = "none"
    SIBLINGS = "siblings"
    SIBLINGS_AND_PARENT = "siblings_and_parent"


PriorityKey = Annotated[str, StringConstraints(pattern=r"^[1-5]$")]
# Integer weights: the solver's objective is integral (CP-SAT), see solver/snapshot.py.
Weight = Annotated[int, Field(ge=0, le=1000)]


class ModePolicy(Strict):
    """What a mode puts in force. ``callable_pools`` is in calling order."""

    callable_pools: tuple[Pool, ...] = Field(min_length=1, max_length=len(Pool))
    mutual_aid: MutualAid
    offer_expiry_s: int = Field(ge=30, le=86_400)
    replan_every_s: int = Field(ge=5, le=86_400)
    max_travel_minutes: int = Field(ge=1, le=600)
    priority_weights: dict[PriorityKey, Weight]
    reassign_penalty_minutes: int = Field(ge=0, le=600)
    suspend_routine_tasks: bool

    @field_validator("callable_pools")
    @classmethod
    def _unique_pools(cls, pools: tuple[Pool, ...]) -> tuple[Pool, ...]:
        if len(set(pools)) != len(pools):
            raise ValueError("a pool may be listed once")
        return pools

    @field_validator("priority_weights")
    @classmethod
    def _weights_by_priority(cls, weights: dict[str, int]) -> dict[str, int]:
        if sorted(weights) != ["1", "2", "3", "4", "5"]:
            raise ValueError("give a weight for each priority 1 … 5")
        ordered = [weights[k] for k in ("1", "2", "3", "4", "5")]
        if any(a < b for a, b in pairwise(ordered)) or ordered[0] == 0:
            raise ValueError("weights must not grow from priority 1 (most urgent) to 5")
        return weights

    @model_validator(mode="after")
    def _mutual_aid_consistent(self) -> Self:
        if (Pool.MUTUAL_AID in self.callable_pools) != (self.mutual_aid is not MutualAid.NONE):
            raise ValueError(
                "mutual_aid must be 'none' exactly when 'mutual_aid' is not a callable pool"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ModePolicyPut(ModePolicy):
    """Body of ``PUT /v1/mode-policies/{key}``: the whole policy, and optionally its version."""

    version: int | None = Field(default=None, ge=1)

    def policy(self) -> ModePolicy:
        return ModePolicy.model_validate(self.model_dump(exclude={"version"}))


_WEIGHTS = {"1": 16, "2": 8, "3": 4, "4": 2, "5": 1}
# At high levels the most urgent incidents win harder over the least urgent ones.
_STEEP_WEIGHTS = {"1": 32, "2": 16, "3": 6, "4": 2, "5": 1}
_STEEPEST_WEIGHTS = {"1": 64, "2": 24, "3": 8, "4": 2, "5": 1}

# The shipped policy table (0004_modes.sql seeds the same rows; a test keeps them equal).
_DEFAULT_ROWS: dict[str, dict[str, Any]] = {
    "routine": {
        "callable_pools": ["on_duty_staff"],
        "mutual_aid": "none",
        "offer_expiry_s": 4 * 3600,
        "replan_every_s": 3600,
        "max_travel_minutes": 30,
        "priority_weights": _WEIGHTS,
        "reassign_penalty_minutes": 60,
        "suspend_routine_tasks": False,
    },
    "IV": {
        "callable_pools": ["staff"],
        "mutual_aid": "none",
        "offer_expiry_s": 600,
        "replan_every_s": 300,
        "max_travel_minutes": 45,
        "priority_weights": _WEIGHTS,
        "reassign_penalty_minutes": 30,
        "suspend_routine_tasks": False,
    },
    "III": {
        "callable_pools": ["staff", "volunteers"],
        "mutual_aid": "none",
        "offer_expiry_s": 300,
        "replan_every_s": 120,
        "max_travel_minutes": 60,
        "priority_weights": _WEIGHTS,
        "reassign_penalty_minutes": 20,
        "suspend_routine_tasks": False,
    },
    "II": {
        "callable_pools": ["staff", "volunteers", "reserves"],
        "mutual_aid": "none",
        "offer_expiry_s": 180,
        "replan_every_s": 60,
        "max_travel_minutes": 75,
        "priority_weights": _STEEP_WEIGHTS,
        "reassign_penalty_minutes": 10,
        "suspend_routine_tasks": True,
    },
    "I": {
        "callable_pools": ["staff", "volunteers", "reserves", "mutual_aid"],
        "mutual_aid": "siblings_and_parent",
        "offer_expiry_s": 120,
        "replan_every_s": 15,
        "max_travel_minutes": 90,
        "priority_weights": _STEEPEST_WEIGHTS,
        "reassign_penalty_minutes": 5,
        "suspend_routine_tasks": True,
    },
}

DEFAULT_POLICIES: Mapping[str, ModePolicy] = {
    key: ModePolicy.model_validate(row, strict=False) for key, row in _DEFAULT_ROWS.items()
}


def policy_for(effective: Mode, policies: Mapping[str, ModePolicy]) -> ModePolicy:
    """The policy in force for ``effective``; a key missing from ``policies`` uses the default."""
    return policies.get(effective.key) or DEFAULT_POLICIES[effective.key]
