"""Drills run by the service, the pure part: the request to create one, the lifecycle, who may
see a drill, and the simulated "now" of a paced drill. No I/O (see :mod:`drills.service`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from dispatch.access import Principal, path_within
from dispatch.errors import Conflict
from dispatch.validation import Id, Strict

__all__ = [
    "ACTIVE",
    "DrillCreate",
    "DrillStatus",
    "check_transition",
    "parse_speed",
    "sim_now",
    "visible",
]

#: At most this many real people take part in one drill.
MAX_PARTICIPANTS = 500
#: Scenario text accepted through the API (YAML), in characters.
MAX_SCENARIO_CHARS = 1_000_000


class DrillStatus(StrEnum):
    """Where a drill is in its life. The last four are final."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


#: A drill in these states is being run by some instance.
ACTIVE = frozenset({DrillStatus.RUNNING, DrillStatus.PAUSED})
FINAL = frozenset(
    {DrillStatus.STOPPED, DrillStatus.FINISHED, DrillStatus.FAILED, DrillStatus.INTERRUPTED}
)

Action = Literal["start", "pause", "resume", "stop"]

# Trainer actions and the states they are allowed from.
_FROM: dict[str, frozenset[DrillStatus]] = {
    "start": frozenset({DrillStatus.CREATED}),
    "pause": frozenset({DrillStatus.RUNNING}),
    "resume": frozenset({DrillStatus.PAUSED}),
    "stop": frozenset({DrillStatus.CREATED, DrillStatus.RUNNING, DrillStatus.PAUSED}),
}
_TO = {"start": DrillStatus.RUNNING, "pause": DrillStatus.PAUSED, "resume": DrillStatus.RUNNING}


def check_transition(
    action: Action, current: DrillStatus, *, stop_requested: bool = False
) -> DrillStatus:
    """The status after ``action``; :class:`Conflict` (409) when it is not allowed now.

    ``stop`` of a running or paused drill only asks for the stop (the instance running it ends
    the drill between two events and writes a partial report), so the status stays; a drill that
    never started goes straight to ``stopped``. Once a stop is asked for, every action (a second
    ``stop`` too) is a conflict.
    """
    if current not in _FROM[action] or stop_requested:
        state = f"{current.value} and stopping" if stop_requested else current.value
        raise Conflict(
            f"cannot {action} a drill that is {state}",
            extra={"status": current.value, "action": action},
        )
    if action == "stop":
        return DrillStatus.STOPPED if current is DrillStatus.CREATED else current
    return _TO[action]


_SPEED = re.compile(r"^(max|x?(\d+(\.\d+)?))$")


def parse_speed(text: str) -> float | None:
    """``max`` → ``None`` (event to event); ``x60`` → 60.0 simulated seconds per real second."""
    m = _SPEED.match(text.strip().lower())
    if m is None:
        raise ValueError("speed is 'max' or xN (e.g. x1, x60)")
    if m.group(1) == "max":
        return None
    value = float(m.group(2))
    if not 0 < value <= 100_000:
        raise ValueError("a speed factor is above 0 and at most 100000")
    return value


class DrillCreate(Strict):
    """Body of ``POST /v1/drills``: a scenario (YAML text, or a bundled scenario by name) and how
    to run it.

    ``participants`` are live people who answer their drill offers for real: the roster must be
    a ``snapshot`` of a live jurisdiction holding them (within the caller's scope) and the speed
    paced (``xN``), so people have real time to answer.
    """

    scenario: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_SCENARIO_CHARS)] | None
    ) = None
    bundled: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    speed: Annotated[str, StringConstraints(max_length=20)] = "max"
    policy: Literal["optimised", "greedy"] = "optimised"
    participants: Annotated[list[Id], Field(max_length=MAX_PARTICIPANTS)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _one_scenario(self) -> DrillCreate:
        if (self.scenario is None) == (self.bundled is None):
            raise ValueError("give exactly one of 'scenario' (YAML text) or 'bundled' (a name)")
        if len(set(self.participants)) != len(self.participants):
            raise ValueError("participants are listed more than once")
        return self


def visible(who: Principal, scope_path: str | None) -> bool:
    """Whether ``who`` may see a drill scoped to ``scope_path`` (``None`` = unscoped drill)."""
    if who.scope_path is None:
        return True
    return scope_path is not None and path_within(scope_path, who.scope_path)


def sim_now(
    sim_time: datetime | None,
    sim_wall_at: datetime | None,
    speed: float | None,
    wall_now: datetime,
) -> datetime | None:
    """The simulated time of a running paced drill, from the owner's last published reading."""
    if sim_time is None or sim_wall_at is None:
        return sim_time
    if speed is None:
        return sim_time
    elapsed = max(0.0, (wall_now - sim_wall_at).total_seconds())
    return sim_time + timedelta(seconds=elapsed * speed)


def speed_text(speed: float | None) -> str:
    """``None`` → ``"max"``; 60.0 → ``"x60"``."""
    return "max" if speed is None else f"x{speed:g}"


def options_json(seed: int, speed: float | None, policy: str) -> dict[str, Any]:
    """The stored options of a drill."""
    return {"seed": seed, "speed": speed_text(speed), "policy": policy}
