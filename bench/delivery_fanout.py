"""Fan-out: ``python -m bench.delivery_fanout [--clients 5000] [--rounds 3]``.

5,000 volunteers hold an SSE stream (``GET /v1/me/stream``) to one app instance (``muster
serve`` in a child process). One transaction then makes one offer to each of them — the
assignment rows and their outbox messages, as a plan does — and the clock runs from the moment
the COMMIT is sent to the moment the last client has read its offer off the socket (target:
under 2 s). Repeated for ``--rounds`` rounds on the same connections.

Baseline in the same run: a bare aiohttp server (child process, no database) holding the same
number of SSE connections writes one pre-built message of the same size to each on request —
the floor set by sockets, the event loop and this load generator's parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

from bench.common import fresh_database
from bench.delivery_common import (
    Arrivals,
    close_all,
    free_port,
    load_note,
    offer_round,
    open_streams,
    percentile,
    raise_fd_limit,
    seed_volunteers,
    serve,
    serve_app,
    table,
)
from dispatch.delivery import envelope, to_text
from dispatch.storage.database import _init_connection

# --- the floor: a bare SSE server without a database ----------------------------------------


def bare_sse_server(port: int, size: int) -> None:
    """Holds SSE connections; ``POST /fire?seq=N`` writes one message to every one of them."""
    from aiohttp import web

    conns: set[web.StreamResponse] = set()
    body = "x" * size

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        conns.add(resp)
        try:
            await asyncio.Event().wait()  # held until the client goes or the server stops
        finally:
            conns.discard(resp)
        return resp

    async def fire(request: web.Request) -> web.Response:
        seq = int(request.query["seq"])
        msg = f"id: {seq}\nevent: offer\ndata: {body}\n\n".encode()

        async def one(resp: web.StreamResponse) -> None:
            await resp.write(msg)

        await asyncio.gather(*(one(r) for r in list(conns)), return_exceptions=True)
        return web.json_response({"sent": len(conns)})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v1/me/stream", stream)
    app.router.add_post("/fire", fire)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _post(host: str, port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await reader.readline()
    writer.close()


async def data_size(dsn: str) -> int:
    """Mean length in bytes of the ``data:`` line of the offers sent: the envelope the streams
    write (:func:`dispatch.delivery.envelope`), measured on the messages of this run."""
    con = await asyncpg.connect(dsn)
    try:
        await _init_connection(con)
        rows = await con.fetch("SELECT seq, kind, payload, exercise, created_at FROM outbox")
    finally:
        await con.close()
    return round(sum(len(to_text(envelope(r)).encode()) for r in rows) / max(1, len(rows)))


def summarise(name: str, t0: float, arrivals: Arrivals) -> list[tuple[str, str]]:
    lat = sorted(t - t0 for t in arrivals.times.values())
    return [
        (f"{name}: clients reached", f"{len(lat)} / {arrivals.expected}"),
        (f"{name}: first client (s)", f"{lat[0]:.3f}" if lat else "-"),
        (f"{name}: median client (s)", f"{percentile(lat, 0.5):.3f}"),
        (f"{name}: last client (s)", f"{lat[-1]:.3f}" if lat else "-"),
    ]


async def run(clients: int, rounds: int, wait_s: float) -> None:
    limit = raise_fd_limit(clients * 2 + 1000)
    if limit < clients + 500:
        print(f"warning: only {limit} open files allowed", file=sys.stderr)
    async with fresh_database("bench_fanout") as dsn:
        print(f"seeding {clients} volunteers ...", file=sys.stderr)
        seeded = await seed_volunteers(dsn, clients)
        tokens = [seeded.tokens[p] for p in seeded.people]
        rows: list[tuple[str, str]] = []
        size = 0

        async with serve_app(dsn, pool_max=10) as app:
            arrivals = Arrivals(clients)
            t = time.monotonic()
            conns = await open_streams(app, tokens, arrivals)
            connect_s = time.monotonic() - t
            await asyncio.sleep(2)  # let every stream finish its initial (empty) replay
            rows.append(("streams opened (s)", f"{connect_s:.1f}"))
            worst = 0.0
            for k in range(1, rounds + 1):
                arrivals.reset(k)
                t0, commit_s = await offer_round(dsn, seeded.people, f"bench-i{k}")
                await arrivals.wait(wait_s)
                rows += summarise(f"round {k}", t0, arrivals)
                rows.append((f"round {k}: of which COMMIT (s)", f"{commit_s:.3f}"))
                if arrivals.times:
                    worst = max(worst, max(arrivals.times.values()) - t0)
                if len(arrivals.times) < clients:
                    worst = float("inf")
            close_all(conns)
            size = await data_size(dsn)

        port = free_port()
        argv = ["-m", "bench.delivery_fanout", "--bare-server", str(port), "--size", str(size)]
        async with serve(argv, port=port) as bare:
            arrivals = Arrivals(clients)
            conns = await open_streams(bare, tokens, arrivals)
            arrivals.reset(1)
            t0 = time.monotonic()
            await _post(bare.host, bare.port, "/fire?seq=1")
            await arrivals.wait(wait_s)
            rows += summarise("baseline: bare SSE server, no database", t0, arrivals)
            rows.append(("baseline: bytes of each data line (as the offers sent)", str(size)))
            close_all(conns)

        rows.append(
            ("target: last client under 2 s", "met" if worst < 2 else f"NOT met ({worst:.2f} s)")
        )
        print(f"## Fan-out: one offer each to {clients} connected SSE clients, {rounds} rounds\n")
        print(table(rows))
        print(f"\n({load_note()}; server, PostgreSQL and the clients share these CPUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_fanout", description=__doc__)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a round after")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=300, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        raise_fd_limit(args.clients * 2 + 1000)
        bare_sse_server(args.bare_server, args.size)
        return 0
    asyncio.run(run(args.clients, args.rounds, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
