"""Domain errors. Only the HTTP layer maps them to status codes (see ``api.problems``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field: a JSON-pointer-like location and a message."""

    loc: str
    msg: str
    type: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "msg": self.msg, "type": self.type}


@dataclass(eq=False)
class DomainError(Exception):
    """Base class: a problem the caller can understand and fix."""

    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail or type(self).__name__


class ValidationFailed(DomainError):
    """The input is malformed or breaks a rule; ``errors`` names the fields."""


class NotFound(DomainError):
    """The object does not exist, or the caller may not know that it does."""


class AlreadyExists(DomainError):
    """An object with this identity already exists."""


class Conflict(DomainError):
    """The request clashes with the current state (for example negative stock)."""


class StaleVersion(DomainError):
    """An optimistic-concurrency check failed: the object changed since it was read."""

    precondition: bool = False


class PreconditionFailed(StaleVersion):
    """An ``If-Match`` header did not match the current version."""


class Unauthenticated(DomainError):
    """No valid credentials were presented."""


class Forbidden(DomainError):
    """The caller is authenticated but outside role or scope."""


class PayloadTooLarge(DomainError):
    """The request body exceeds the configured limit."""


class IdempotencyMismatch(DomainError):
    """An Idempotency-Key was reused with a different request."""


class RequestInProgress(DomainError):
    """A request with the same Idempotency-Key is still being processed."""


class UnsupportedMediaType(DomainError):
    """The request body is not in a format this endpoint accepts."""
