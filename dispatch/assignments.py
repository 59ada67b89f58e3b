"""Assignment lifecycle: proposed → offered → accepted | declined | expired → en_route →
on_scene → released (plus withdrawn by the engine and cancelled by a coordinator)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from dispatch.errors import Conflict
from dispatch.validation import Id, Latitude, Longitude, Strict


class Status(StrEnum):
    """Where an assignment is in its lifecycle."""

    PROPOSED = "proposed"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"


#: Statuses that occupy the person (the database allows one such row per person).
ACTIVE = frozenset(
    {Status.PROPOSED, Status.OFFERED, Status.ACCEPTED, Status.EN_ROUTE, Status.ON_SCENE}
)
#: Statuses the solver must keep: the person said yes (or was pinned).
COMMITTED = frozenset({Status.ACCEPTED, Status.EN_ROUTE, Status.ON_SCENE})

_NEXT: dict[Status, frozenset[Status]] = {
    Status.PROPOSED: frozenset({Status.OFFERED, Status.WITHDRAWN, Status.CANCELLED}),
    Status.OFFERED: frozenset(
        {Status.ACCEPTED, Status.DECLINED, Status.EXPIRED, Status.WITHDRAWN, Status.CANCELLED}
    ),
    # The engine may withdraw an accepted assignment only after a coordinator unlocked it.
    Status.ACCEPTED: frozenset(
        {Status.EN_ROUTE, Status.ON_SCENE, Status.RELEASED, Status.CANCELLED, Status.WITHDRAWN}
    ),
    Status.EN_ROUTE: frozenset({Status.ON_SCENE, Status.RELEASED, Status.CANCELLED}),
    Status.ON_SCENE: frozenset({Status.RELEASED}),
}

#: The timestamp column each status sets.
STAMP: dict[Status, str] = {s: f"{s.value}_at" for s in Status}


def can_move(current: Status, target: Status) -> bool:
    """Whether ``current → target`` is a legal step."""
    return target in _NEXT.get(current, frozenset())


def check_move(current: Status, target: Status) -> None:
    """Raise :class:`Conflict` for an illegal step, with a message a volunteer understands."""
    if can_move(current, target):
        return
    if current is Status.EXPIRED:
        raise Conflict("this offer has expired", extra={"current_status": current.value})
    if current in (Status.WITHDRAWN, Status.CANCELLED):
        raise Conflict("this offer was withdrawn", extra={"current_status": current.value})
    raise Conflict(
        f"an assignment that is {current.value} cannot become {target.value}",
        extra={"current_status": current.value},
    )


class Decline(Strict):
    """Body of ``POST /v1/assignments/{id}/decline``."""

    reason: Annotated[str, Field(max_length=500)] = ""


class StatusUpdate(Strict):
    """Body of ``POST /v1/assignments/{id}/status``: progress reported by the person."""

    status: Literal["en_route", "on_scene", "done"]
    lat: Latitude | None = None
    lon: Longitude | None = None
    note: Annotated[str, Field(max_length=500)] = ""

    def target(self) -> Status:
        """The lifecycle status this report moves to (``done`` releases the person)."""
        return Status.RELEASED if self.status == "done" else Status(self.status)


class PairRuleCreate(Strict):
    """Body of ``POST /v1/incidents/{id}/pins`` and ``.../forbids``."""

    person: Id
    skill: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=500)] = ""


def worked_hours(start: float | None, end: float | None, now: float) -> float:
    """Hours between ``start`` and ``end`` (or ``now`` while still deployed), in epoch seconds."""
    if start is None:
        return 0.0
    stop = end if end is not None else now
    return max(0.0, (stop - start) / 3600.0)
