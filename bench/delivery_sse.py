"""Many idle streams: ``python -m bench.delivery_sse [--clients 10000] [--heartbeat 5]``.

One app instance (``muster serve`` in a child process, so only the server's memory is counted)
holds ``--clients`` concurrent SSE streams (``GET /v1/me/stream``), one per volunteer, each
with its own token. Prints the server's resident memory before and after (and per
connection), the CPU the server spends keeping them alive, whether heartbeats (``: ping``)
reach every connection, and — to show the streams are live, not just open — the time for one
offer to each of them to arrive. The clients are raw asyncio sockets in this process.

Baseline in the same run: the same server process's memory before any stream is open, and an
idle period of the same length before the streams, for the CPU figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.common import fresh_database
from bench.delivery_common import (
    Arrivals,
    SseConnection,
    close_all,
    cpu_seconds,
    load_note,
    offer_round,
    open_streams,
    raise_fd_limit,
    rss_kib,
    seed_volunteers,
    serve_app,
    table,
)


async def run(clients: int, heartbeat: float, parallel: int) -> None:
    limit = raise_fd_limit(clients + 2000)
    if limit < clients + 200:
        print(f"warning: only {limit} open files allowed; expect failures", file=sys.stderr)
    async with fresh_database("bench_sse") as dsn:
        print(f"seeding {clients} volunteers ...", file=sys.stderr)
        seeded = await seed_volunteers(dsn, clients)
        tokens = [seeded.tokens[p] for p in seeded.people]
        rows: list[tuple[str, str]] = []

        async with serve_app(dsn, heartbeat_s=heartbeat, pool_max=10) as app:
            # Warm: one stream opened and closed, so lazily built state is not counted per stream.
            warm = await open_streams(app, tokens[:1], lambda *_: None)
            close_all(warm)
            await asyncio.sleep(1)
            rss0 = rss_kib(app.pid)
            idle = 2.5 * heartbeat
            cpu0 = cpu_seconds(app.pid)
            await asyncio.sleep(idle)
            idle_cpu = cpu_seconds(app.pid) - cpu0

            arrivals = Arrivals(clients)
            t = time.monotonic()
            conns: list[SseConnection] = await open_streams(
                app, tokens, arrivals, parallel=parallel
            )
            opened_s = time.monotonic() - t
            await asyncio.sleep(1)
            rss1 = rss_kib(app.pid)

            for c in conns:
                c.pings = 0
            cpu1 = cpu_seconds(app.pid)
            await asyncio.sleep(idle)
            held_cpu = cpu_seconds(app.pid) - cpu1
            with_ping = sum(1 for c in conns if c.pings >= 1)
            two_pings = sum(1 for c in conns if c.pings >= 2)
            alive = sum(1 for c in conns if not c.closed.done())
            rss2 = rss_kib(app.pid)

            arrivals.reset(1)
            t0, _ = await offer_round(dsn, seeded.people, "bench-sse")
            await arrivals.wait(60)
            last = max(arrivals.times.values()) - t0 if arrivals.times else float("nan")
            rss3 = rss_kib(app.pid)
            close_all(conns)

        per = (rss1 - rss0) / clients
        rows += [
            ("streams open at once", f"{alive} / {clients}"),
            ("time to open them (s)", f"{opened_s:.1f}"),
            ("baseline: server RSS before any stream (MiB)", f"{rss0 / 1024:.0f}"),
            ("server RSS with every stream open (MiB)", f"{rss1 / 1024:.0f}"),
            ("server memory per stream (KiB)", f"{per:.1f}"),
            (f"server RSS after {idle:.1f} s of heartbeats (MiB)", f"{rss2 / 1024:.0f}"),
            ("server RSS after one offer to each (MiB)", f"{rss3 / 1024:.0f}"),
            (f"streams with ≥ 1 / ≥ 2 heartbeats in {idle:.1f} s", f"{with_ping} / {two_pings}"),
            (
                f"baseline: server CPU idle, no streams, {idle:.1f} s (s)",
                f"{idle_cpu:.2f}",
            ),
            (f"server CPU holding the streams, {idle:.1f} s (s)", f"{held_cpu:.2f}"),
            ("one offer to every stream: last arrival (s)", f"{last:.2f}"),
            ("offers received", f"{len(arrivals.times)} / {clients}"),
        ]
        print(f"## {clients} concurrent SSE streams on one instance, heartbeat {heartbeat} s\n")
        print(table(rows))
        print(f"\n({load_note()}; server, PostgreSQL and the clients share these CPUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_sse", description=__doc__)
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--heartbeat", type=float, default=5.0, help="MUSTER_HEARTBEAT_S")
    parser.add_argument("--parallel", type=int, default=100, help="handshakes in flight")
    args = parser.parse_args(argv)
    asyncio.run(run(args.clients, args.heartbeat, args.parallel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
