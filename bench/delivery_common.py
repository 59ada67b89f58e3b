"""Plumbing shared by the delivery benchmarks (``bench.delivery_*``).

The app under test always runs as ``muster serve`` in a child process (engine off, so no solver
competes for the CPU), on a fresh database from :func:`bench.common.fresh_database`; the
benchmark process is the load generator, so client memory and CPU are never counted as the
server's. Seeding writes straight to the database: people from the demo city, volunteer tokens
(only their hashes are stored, as the API would do) and offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dispatch.audit import AuditContext
from dispatch.demo_city import generate
from dispatch.storage import engine as engine_store
from dispatch.storage.database import _init_connection, create_pool
from dispatch.storage.queries import queries
from dispatch.storage.seed import load_city
from dispatch.tokens import hash_secret, new_secret

ROOT = Path(__file__).resolve().parent.parent
_ENGINE = queries("engine")  # the production statements, e.g. ``offer``


def raise_fd_limit(want: int) -> int:
    """Raise this process's open-file limit towards ``want`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_note() -> str:
    """The machine's load averages, to print next to the figures (other work shares the CPU)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


@dataclass
class Served:
    """A server running in a child process."""

    proc: asyncio.subprocess.Process
    url: str
    host: str
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid


async def _wait_ready(proc: asyncio.subprocess.Process, host: str, port: int, path: str) -> None:
    deadline = time.monotonic() + 60
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not become ready in 60 s")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def serve(
    argv: list[str], *, port: int, env: dict[str, str] | None = None, ready_path: str = "/healthz"
) -> AsyncIterator[Served]:
    """Run ``python argv...`` in a child process until the block ends; waits for readiness."""
    host = "127.0.0.1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    try:
        await _wait_ready(proc, host, port, ready_path)
        yield Served(proc, f"http://{host}:{port}", host, port)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@asynccontextmanager
async def serve_app(
    dsn: str, *, heartbeat_s: float = 15.0, pool_max: int = 10, extra: dict[str, str] | None = None
) -> AsyncIterator[Served]:
    """``muster serve`` on ``dsn`` in a child process (engine off, warnings-only logs)."""
    port = free_port()
    env = {
        "DATABASE_URL": dsn,
        "MUSTER_PORT": str(port),
        "MUSTER_ENGINE": "off",
        "MUSTER_LOG_LEVEL": "WARNING",
        "MUSTER_HEARTBEAT_S": str(heartbeat_s),
        "MUSTER_POOL_MIN": str(min(2, pool_max)),
        "MUSTER_POOL_MAX": str(pool_max),
        **(extra or {}),
    }
    async with serve(["-m", "api.cli", "serve"], port=port, env=env) as served:
        yield served


# --- seeding ------------------------------------------------------------------------------


@dataclass
class Seeded:
    """Volunteers with tokens (and, when asked, one open offer each)."""

    people: list[str]
    tokens: dict[str, str]  # person id -> bearer secret
    offers: dict[str, str] = field(default_factory=dict)  # person id -> assignment id


async def seed_volunteers(dsn: str, n: int, *, offers: bool = False) -> Seeded:
    """A demo city of ``n`` people, a volunteer token each, and optionally one offer each."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        city = generate(n, seed=11)
        async with pool.acquire() as con:
            await load_city(con, city, AuditContext.system("bench"))
            people = [p["id"] for p in city.people][:n]
            tokens = {pid: new_secret() for pid in people}
            await con.executemany(
                "INSERT INTO api_tokens (id, token_hash, role, person_id, label)"
                " VALUES ($1, $2, 'volunteer', $3, 'bench')",
                [(uuid.uuid4(), hash_secret(t), pid) for pid, t in tokens.items()],
            )
            seeded = Seeded(people, tokens)
            if offers:
                seeded.offers = await make_offers(con, people)
        return seeded
    finally:
        await pool.close()


async def make_incident(con: asyncpg.Connection, iid: str, demand: int) -> None:
    """An active incident in the first community of the demo city."""
    code = await con.fetchval(
        "SELECT code FROM jurisdictions WHERE kind = 'community' ORDER BY code LIMIT 1"
    )
    await con.execute(
        "INSERT INTO incidents (id, type, title, lat, lon, jurisdiction_code, priority, status,"
        " demands, supplies) VALUES ($1, 'flood', $2, 31.23, 121.47, $3, 2, 'active', $4, '{}')",
        iid,
        f"Bench incident {iid}",
        code,
        [{"skill": "first_aid", "count": demand, "min": 1}],
    )


async def make_offers(
    con: asyncpg.Connection, people: list[str], *, incident: str = "bench-i1", hours: float = 6
) -> dict[str, str]:
    """One open offer per person on one incident (deadline ``hours`` from wall time)."""
    await make_incident(con, incident, len(people))
    now = datetime.now(UTC)
    rows = await con.fetch(
        "INSERT INTO assignments (person_id, incident_id, skill, status, mode_key, reason,"
        " offer_deadline, proposed_at, offered_at)"
        " SELECT p, $2, 'first_aid', 'offered', 'emergency', 'bench', $3, $4, $4"
        " FROM unnest($1::text[]) AS p RETURNING id, person_id",
        people,
        incident,
        now + timedelta(hours=hours),
        now,
    )
    return {r["person_id"]: r["id"] for r in rows}


async def offer_round(dsn: str, people: list[str], incident: str) -> tuple[float, float]:
    """One transaction: an offer to each person, as a plan makes them (the engine's ``offer``
    statement and :func:`~dispatch.storage.engine.offer_message` in the outbox).

    The previous round's offers are withdrawn first (one active offer per person), untimed.
    Returns (monotonic time the COMMIT was sent, seconds the COMMIT took).
    """
    n = len(people)
    con = await asyncpg.connect(dsn)
    await _init_connection(con)
    try:
        await make_incident(con, incident, n)
        now = datetime.now(UTC)
        await con.execute(
            "UPDATE assignments SET status = 'withdrawn', withdrawn_at = $1 WHERE status = 'offered'",
            now,
        )
        tr = con.transaction()
        await tr.start()
        rows = await con.fetch(
            _ENGINE.offer,
            people,
            [incident] * n,
            ["first_aid"] * n,
            ["emergency"] * n,
            [12.5] * n,
            ["nearest with first aid"] * n,
            [now + timedelta(minutes=10)] * n,
            None,  # no plan
            now,
        )
        await engine_store.send_many(
            con,
            "offer",
            [(r["person_id"], engine_store.offer_message(r)) for r in rows],
            now=now,
            exercise=False,
        )
        t0 = time.monotonic()
        await tr.commit()
        return t0, time.monotonic() - t0
    finally:
        await con.close()


# --- a lightweight SSE client ----------------------------------------------------------------


class SseConnection(asyncio.Protocol):
    """A raw-socket SSE reader: counts events and heartbeats without parsing HTTP fully.

    ``on_event(conn, seq, t)`` is called for each ``id:`` line (the message's sequence number)
    with the monotonic time it was read. Kept deliberately small: 10,000 of these must fit in
    one client process next to the server on two cores.
    """

    def __init__(self, request: bytes, on_event: Callable[[SseConnection, int, float], None]):
        self.request = request
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.status = 0
        self.headers_done = False
        self.pings = 0
        self.events = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.headers_done:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head.split(b" ", 2)[1])
            self.headers_done = True
            self.buf = rest
            if self.status != 200 and not self.ready.done():
                self.ready.set_exception(RuntimeError(f"HTTP {self.status}"))
        # Chunked transfer encoding: chunk-size lines are hex and never start with ":" or a
        # field name followed by ":", so scanning lines for our fields is safe enough here.
        *lines, self.buf = self.buf.split(b"\n")
        now = time.monotonic()
        for line in lines:
            if line.startswith(b"retry:"):
                if not self.ready.done():
                    self.ready.set_result(None)
            elif line.startswith(b": ping"):
                self.pings += 1
            elif line.startswith(b"id: "):
                self.events += 1
                self.on_event(self, int(line[4:].strip()), now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the stream started"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Arrivals:
    """When each connection received a message with ``seq >= want`` (monotonic times)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.want = 1
        self.times: dict[int, float] = {}
        self.done = asyncio.Event()

    def reset(self, want: int) -> None:
        self.want = want
        self.times = {}
        self.done.clear()

    def __call__(self, conn: SseConnection, seq: int, t: float) -> None:
        if seq >= self.want and id(conn) not in self.times:
            self.times[id(conn)] = t
            if len(self.times) >= self.expected:
                self.done.set()

    async def wait(self, timeout_s: float) -> None:
        """Until every connection has the message, or ``timeout_s`` (the figures say how many)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout_s)


def sse_request(host: str, port: int, token: str, path: str = "/v1/me/stream") -> bytes:
    """The raw HTTP/1.1 request that opens a stream."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()


async def open_streams(
    served: Served,
    tokens: list[str],
    on_event: Callable[[SseConnection, int, float], None],
    *,
    parallel: int = 200,
) -> list[SseConnection]:
    """Open one SSE stream per token (``parallel`` handshakes at a time; the listen backlog of
    the server is finite, so opening 10,000 at once would just time out in SYN retries)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)
    conns: list[SseConnection] = []

    async def one(token: str) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    _, proto = await loop.create_connection(
                        lambda: SseConnection(
                            sse_request(served.host, served.port, token), on_event
                        ),
                        served.host,
                        served.port,
                    )
                    await asyncio.wait_for(proto.ready, 60)
                    conns.append(proto)
                    return
                except (OSError, TimeoutError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one(t) for t in tokens))
    return conns


def close_all(conns: list[SseConnection]) -> None:
    """Close every stream."""
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def table(rows: list[tuple[str, Any]]) -> str:
    """A two-column Markdown table."""
    out = ["| measure | value |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


__all__ = [
    "Arrivals",
    "Seeded",
    "Served",
    "SseConnection",
    "close_all",
    "cpu_seconds",
    "free_port",
    "load_note",
    "make_offers",
    "offer_round",
    "open_streams",
    "percentile",
    "raise_fd_limit",
    "rss_kib",
    "seed_volunteers",
    "serve",
    "serve_app",
    "table",
]
