"""Live-participation drills: real volunteers get exercise-marked offers and answer them for real.

How it fits together:

- **Who.** A drill's ``participants`` are live people. The drill's roster must be a snapshot of
  a live jurisdiction holding them (so they exist in the drill schema under the same ids) and it
  must run paced (×N), so people have real time to answer. The simulated responders never
  answer for them (``Control.participants`` in :mod:`drills.runner`).
- **Out.** Messages the drill engine writes to a participant in the *drill schema's* outbox are
  copied into the *live* outbox after each step of the drill loop, exercise-marked, in one
  transaction with the relay position (:func:`dispatch.storage.drills.relay`): they reach the
  person's usual ``/v1/me/stream``, ``/v1/me/ws`` and webhooks exactly once, in order, with the
  person's ordinary sequence numbers. The kind is the drill message's own (``offer``,
  ``offer_withdrawn``, ...); the payload is the drill's, plus ``drill`` (drill id and name, the
  drill assignment, simulated and real deadlines) and ``links`` (where to answer).
- **Back.** ``POST /v1/me/drills/{drill}/assignments/{id}/accept|decline|status`` applies the
  answer inside the drill schema with the same storage functions as a live answer
  (:mod:`dispatch.storage.assignments`), at the drill's simulated "now". On the instance running
  the drill the answer is applied by the drill loop itself between two events (so it is
  serialised with the engine exactly like a simulated responder's answer); on another instance
  it is applied directly at the simulated time interpolated from the registry and the owner is
  poked through it.

Nothing else touches live tables: the drill engine only ever writes its own schema.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatch.access import path_within
from dispatch.errors import FieldError, ValidationFailed
from dispatch.storage import drills as store

__all__ = ["answer_links", "decorator", "participant_figures", "validate_participants"]

#: Message kinds whose payload names a drill assignment the person can act on.
_ANSWERABLE = frozenset({"offer"})


def answer_links(drill_id: str, assignment_id: str) -> dict[str, str]:
    """Where a participant answers a drill offer (volunteer token, like live answers)."""
    base = f"/v1/me/drills/{drill_id}/assignments/{assignment_id}"
    return {"accept": f"{base}/accept", "decline": f"{base}/decline", "status": f"{base}/status"}


def decorator(
    drill_id: str,
    name: str,
    speed: float,
    sim_now: Callable[[], datetime],
    wall_now: Callable[[], datetime],
) -> Callable[[asyncpg.Record], dict[str, Any]]:
    """Turns a drill outbox row into the payload of its live, exercise-marked copy."""

    def decorate(row: asyncpg.Record) -> dict[str, Any]:
        payload = dict(row["payload"] or {})
        assignment = payload.get("assignment")
        info: dict[str, Any] = {
            "id": drill_id,
            "name": name,
            "assignment": assignment,
            "simulated_at": row["created_at"].isoformat(),
        }
        deadline = payload.get("deadline")
        if isinstance(deadline, str):
            # The drill's deadline is simulated time; at ×N it comes N times sooner in real
            # time (a pause holds it back: this is the earliest it can come).
            left = (datetime.fromisoformat(deadline) - sim_now()).total_seconds()
            info["answer_by"] = (wall_now() + timedelta(seconds=max(0.0, left) / speed)).isoformat()
        out: dict[str, Any] = {**payload, "drill": info}
        if row["kind"] in _ANSWERABLE and isinstance(assignment, str):
            out["links"] = answer_links(drill_id, assignment)
        return out

    return decorate


async def validate_participants(
    con: asyncpg.Connection,
    ids: list[str],
    *,
    snapshot_path: str | None,
    scope_path: str | None,
    speed: float | None,
) -> None:
    """Participants need a snapshot roster holding them, a paced speed, and live people in both
    the snapshot's subtree and the caller's scope (the same answer for unknown and out-of-scope
    people: nothing about people outside the scope is revealed)."""
    if not ids:
        return
    errors: list[FieldError] = []
    if snapshot_path is None:
        errors.append(
            FieldError(
                "/participants",
                "live participants need a roster snapshot of their jurisdiction"
                " (roster: {snapshot: {jurisdiction: CODE}})",
            )
        )
    if speed is None:
        errors.append(
            FieldError("/speed", "a drill with live participants runs paced (xN), not at 'max'")
        )
    if errors:
        raise ValidationFailed("this drill cannot have live participants", errors=errors)
    paths = await store.live_people(con, ids)
    for k, pid in enumerate(ids):
        path = paths.get(pid)
        inside = (
            path is not None and path_within(path, snapshot_path) and path_within(path, scope_path)
        )
        if not inside:
            errors.append(
                FieldError(
                    f"/participants/{k}",
                    f"no active person {pid!r} in the snapshot's jurisdiction within your scope",
                )
            )
    if errors:
        raise ValidationFailed("unknown participants", errors=errors)


def participant_figures(rows: list[asyncpg.Record], start: datetime) -> dict[str, Any]:
    """What each real participant did with their drill offers (the report's ``participants``)."""

    def s(at: datetime | None) -> float | None:
        return None if at is None else round((at - start).total_seconds(), 3)

    people: dict[str, dict[str, Any]] = {}
    for r in rows:
        p = people.setdefault(
            r["person_id"],
            {"offers": 0, "accepted": 0, "declined": 0, "expired": 0, "assignments": []},
        )
        offered = r["offered_at"] is not None
        p["offers"] += 1 if offered else 0
        p["accepted"] += 1 if r["accepted_at"] is not None else 0
        p["declined"] += 1 if r["declined_at"] is not None else 0
        p["expired"] += 1 if r["expired_at"] is not None else 0
        answered = r["accepted_at"] or r["declined_at"]
        p["assignments"].append(
            {
                "assignment": r["id"],
                "incident": r["incident_id"],
                "skill": r["skill"],
                "status": r["status"],
                "offered_s": s(r["offered_at"]),
                "accepted_s": s(r["accepted_at"]),
                "declined_s": s(r["declined_at"]),
                "expired_s": s(r["expired_at"]),
                "answer_s": (
                    round((answered - r["offered_at"]).total_seconds(), 3)
                    if answered is not None and offered
                    else None
                ),
                "decline_reason": r["decline_reason"],
            }
        )
    return dict(sorted(people.items()))
