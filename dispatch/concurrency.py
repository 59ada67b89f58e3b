"""Optimistic concurrency: every mutable row carries a ``version``."""

from __future__ import annotations

from dispatch.errors import PreconditionFailed, StaleVersion


def check_version(current: int, *, body_version: int | None, if_match: int | None) -> None:
    """Raise when the caller's idea of the version (header or body) is not the current one."""
    if if_match is not None and if_match != current:
        raise PreconditionFailed(
            f"If-Match names version {if_match}, the current version is {current}",
            extra={"current_version": current},
        )
    if body_version is not None and body_version != current:
        raise StaleVersion(
            f"the object was changed: you sent version {body_version}, current is {current}",
            extra={"current_version": current},
        )
