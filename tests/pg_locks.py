"""Waiting until a PostgreSQL backend waits on a lock held by the test.

PostgreSQL announces nothing when a session starts to wait on a lock, so this is the one place
where the tests poll: ``pg_stat_activity`` / ``pg_blocking_pids`` every few milliseconds, with a
deadline, until the backend is seen waiting (or ``went_through`` says it never will).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

POLL_S = 0.01


async def blocked_by_me(observer: Any, *, within: float, what: str) -> list[int]:
    """The backends waiting on a lock that ``observer``'s session holds, once there are any."""
    return await _until(
        observer,
        "SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity"
        " WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))",
        (),
        within,
        what,
        None,
    )


async def waiting_on_a_lock(
    observer: Any,
    pid: int,
    *,
    within: float,
    what: str,
    went_through: tuple[Callable[[], bool], str] | None = None,
) -> None:
    """Return once backend ``pid`` waits on a lock (whoever holds it); fails at once with
    ``went_through``'s message if its check says the waiter finished instead."""
    await _until(
        observer,
        "SELECT CASE WHEN wait_event_type = 'Lock' THEN ARRAY[pid] ELSE '{}' END"
        " FROM pg_stat_activity WHERE pid = $1",
        (pid,),
        within,
        what,
        went_through,
    )


async def _until(
    observer: Any,
    sql: str,
    args: tuple[Any, ...],
    within: float,
    what: str,
    went_through: tuple[Callable[[], bool], str] | None,
) -> list[int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        pids = list(await observer.fetchval(sql, *args) or [])
        if pids:
            return pids
        if went_through is not None:
            done, message = went_through
            assert not done(), message
        assert loop.time() < deadline, f"{what} never waited"
        await asyncio.sleep(POLL_S)
