"""The audit trail's domain side: who acts, and the shape of an entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who is changing things, under which request and when; passed to every write.

    ``at`` is the moment of the change by the caller's clock (wall time live, simulated time in
    a drill); it stamps domain timestamps such as ``reported_at`` or a mode's ``set_at``.
    ``None`` lets the database's clock decide.
    """

    actor: str
    actor_role: str
    request_id: str | None = None
    at: datetime | None = None

    @classmethod
    def system(cls, what: str = "muster", request_id: str | None = None) -> AuditContext:
        """The service itself (engine, CLI, migrations) as the actor."""
        return cls(actor=f"system:{what}", actor_role="system", request_id=request_id)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: before/after are JSON-able snapshots of the object (``None`` if absent)."""

    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of verifying the audit hash chain."""

    rows: int
    ok: bool
    head_hash: str | None
    first_bad_seq: int | None = None
    problem: str | None = None
