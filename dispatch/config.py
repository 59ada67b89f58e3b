"""Settings read from the environment (12-factor), with CLI overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    """Per-user data directory used when neither ``--data-dir`` nor ``MUSTER_DATA_DIR`` is set."""
    return Path(platformdirs.user_data_dir("muster"))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the composition root needs; build with :meth:`from_env`."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 64 * 1024 * 1024
    pool_min: int = 2
    pool_max: int = 10
    log_level: str = "INFO"
    log_json: bool = True
    shutdown_timeout_s: float = 10.0
    engine: bool = True
    solve_time_limit_s: float = 2.0
    replan_debounce_s: float = 1.0
    leader_retry_s: float = 5.0
    webhook_max_attempts: int = 8
    webhook_backoff_base_s: float = 5.0
    webhook_backoff_cap_s: float = 600.0
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 16
    webhook_batch: int = 20
    webhook_poll_s: float = 5.0
    heartbeat_s: float = 15.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read ``MUSTER_*`` variables and ``DATABASE_URL``."""
        e = os.environ if env is None else env
        base = cls()
        return replace(
            base,
            database_url=e.get("DATABASE_URL") or None,
            data_dir=Path(e["MUSTER_DATA_DIR"]) if e.get("MUSTER_DATA_DIR") else base.data_dir,
            host=e.get("MUSTER_HOST", base.host),
            port=int(e.get("MUSTER_PORT", base.port)),
            max_body_bytes=int(e.get("MUSTER_MAX_BODY_BYTES", base.max_body_bytes)),
            max_import_bytes=int(e.get("MUSTER_MAX_IMPORT_BYTES", base.max_import_bytes)),
            pool_min=int(e.get("MUSTER_POOL_MIN", base.pool_min)),
            pool_max=int(e.get("MUSTER_POOL_MAX", base.pool_max)),
            log_level=e.get("MUSTER_LOG_LEVEL", base.log_level).upper(),
            log_json=e.get("MUSTER_LOG_FORMAT", "json").lower() == "json",
            engine=e.get("MUSTER_ENGINE", "on").lower() not in ("off", "0", "false", "no"),
            solve_time_limit_s=float(e.get("MUSTER_SOLVE_TIME_LIMIT_S", base.solve_time_limit_s)),
            replan_debounce_s=float(e.get("MUSTER_REPLAN_DEBOUNCE_S", base.replan_debounce_s)),
            leader_retry_s=float(e.get("MUSTER_LEADER_RETRY_S", base.leader_retry_s)),
            webhook_max_attempts=int(
                e.get("MUSTER_WEBHOOK_MAX_ATTEMPTS", base.webhook_max_attempts)
            ),
            webhook_backoff_base_s=float(
                e.get("MUSTER_WEBHOOK_BACKOFF_BASE_S", base.webhook_backoff_base_s)
            ),
            webhook_backoff_cap_s=float(
                e.get("MUSTER_WEBHOOK_BACKOFF_CAP_S", base.webhook_backoff_cap_s)
            ),
            webhook_timeout_s=float(e.get("MUSTER_WEBHOOK_TIMEOUT_S", base.webhook_timeout_s)),
            webhook_concurrency=int(e.get("MUSTER_WEBHOOK_CONCURRENCY", base.webhook_concurrency)),
            webhook_batch=int(e.get("MUSTER_WEBHOOK_BATCH", base.webhook_batch)),
            webhook_poll_s=float(e.get("MUSTER_WEBHOOK_POLL_S", base.webhook_poll_s)),
            heartbeat_s=float(e.get("MUSTER_HEARTBEAT_S", base.heartbeat_s)),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with the non-``None`` overrides applied (CLI flags win over env)."""
        clean = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **clean)  # type: ignore[arg-type]
