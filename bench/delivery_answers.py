"""Answer throughput: ``python -m bench.delivery_answers [--offers 3000] [--concurrency 32]``.

Volunteers answer their offers (half accept, half decline) through the real app over HTTP —
``muster serve`` in a child process, real bearer tokens, an ``Idempotency-Key`` on every POST —
while the same load generator, in the same run, drives a bare aiohttp + asyncpg endpoint that
does one INSERT per request (same pool size, also in a child process): the ceiling an answer
could reach on this machine. Prints throughput, p50/p99 latency of both and their ratio
(target: answers at ≥ 50 % of the ceiling's throughput).

How an answer travels (``api/answers.py``, ``dispatch/storage/answers.py``,
``dispatch/storage/answer_batch.py``, migration 0012): the two answer routes authenticate and
honour ``Idempotency-Key`` themselves. The answers arriving together are read together — one
round trip for their tokens, what their keys hold and the offers' row versions; the checks and
the response body in Python, per request; then the planned answer joins the instance's answer
batch (group commit). One writer task
stores a batch with one call of ``answer_offers()`` — one transaction, one commit (one WAL
flush), one UPDATE of the offers (so the ``assignment_events`` trigger notifies coordinator
streams once a batch) — and, while that commit runs, the answers arriving meanwhile gather for
the next one (no timer: a lone answer is written at once). Per answer, the function moves
exactly the version read, stores the key with the finished response, appends the audit row,
and for a decline records the pair rule; the batch's declines request (or hold) one re-plan.
An answer whose row changed or whose key was taken meanwhile writes nothing and its request
reads again; a batch that fails as a whole is written again answer by answer. Each response is
sent after its batch committed. Every other POST keeps the generic middleware path (claim,
run, store: three commits). At commit the batch's audit rows are sealed into the hash chain
when the chain's lock is free (migration 0010; a commit that finds it taken does not wait; the
next sealer, or the sweeper, seals its rows). The table reports how many answers the measured
rounds' batches held (from the app's ``muster_answer_batch_size`` histogram on ``/metrics``).

A third figure, also from the same run, splits the gap: the bare server running only an
answer's database transaction (lock the offer, update it, append the audit row, commit) — what
is left once HTTP routing, authentication and idempotency are taken away (in five round trips).

The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, one
connection per concurrent worker, so that its own CPU use (it shares the machine's cores with
both servers and PostgreSQL) stays small next to the servers'. The engine is off in the app:
declines request a re-plan (a row), but no solver runs during the measurement. The volunteers'
tokens start unused, so authentication stamps ``last_used_at`` (at most once a minute per
token) as it would for a volunteer answering their first offer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field

from bench.common import fresh_database
from bench.delivery_common import (
    Served,
    cpu_seconds,
    free_port,
    load_note,
    percentile,
    seed_volunteers,
    serve,
    serve_app,
    table,
)


@dataclass
class Request:
    """One HTTP request to send."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Result:
    """What a run measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0) + self.statuses.get(201, 0)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, req: Request
) -> int:
    head = [f"POST {req.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(req.body)}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + req.body)
    status_line = await reader.readline()
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def drive(served: Served, requests: list[Request], concurrency: int) -> Result:
    """Send ``requests`` over ``concurrency`` keep-alive connections; time each one."""
    queue = list(reversed(requests))
    result = Result(0.0)
    host = f"{served.host}:{served.port}"

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(served.host, served.port)
        try:
            while queue:
                req = queue.pop()
                t = time.perf_counter()
                status = await _exchange(reader, writer, host, req)
                result.latencies.append(time.perf_counter() - t)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    cpu0 = cpu_seconds(served.pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    result.server_cpu_s = cpu_seconds(served.pid) - cpu0
    result.latencies.sort()
    return result


def answers(offers: dict[str, str], tokens: dict[str, str], mix: str = "both") -> list[Request]:
    """One answer per offer (``mix``: alternating accept and decline, or only one of them),
    each with its own Idempotency-Key."""
    out = []
    for k, (pid, aid) in enumerate(offers.items()):
        headers = {
            "Authorization": f"Bearer {tokens[pid]}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        }
        if mix == "accept" or (mix == "both" and k % 2 == 0):
            out.append(Request(f"/v1/assignments/{aid}/accept", headers, b""))
        else:
            body = json.dumps({"reason": "cannot make it"}).encode()
            out.append(Request(f"/v1/assignments/{aid}/decline", headers, body))
    return out


def inserts(n: int, tokens: list[str]) -> list[Request]:
    """Requests of the same shape for the bare endpoint (it ignores the headers)."""
    return [
        Request(
            "/insert",
            {
                "Authorization": f"Bearer {tokens[k % len(tokens)]}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            },
            json.dumps({"reason": "cannot make it"}).encode(),
        )
        for k in range(n)
    ]


# --- the ceiling: a bare aiohttp + asyncpg endpoint ------------------------------------------


def ceiling_server(dsn: str, port: int, pool_max: int) -> None:
    """One INSERT per POST, answered with the new row as JSON; nothing else."""
    import asyncpg
    from aiohttp import web

    async def insert(request: web.Request) -> web.Response:
        body = await request.json()
        pool = request.app["pool"]
        async with pool.acquire() as con:
            row = await con.fetchrow(
                "INSERT INTO bench_ceiling (reason, at) VALUES ($1, now()) RETURNING id, at",
                body.get("reason", ""),
            )
        return web.json_response({"id": row["id"], "at": row["at"].isoformat()})

    async def answer(request: web.Request) -> web.Response:
        """The answer's transaction alone: lock, move, audit row, commit."""
        aid = request.match_info["id"]
        pool = request.app["pool"]
        async with pool.acquire() as con, con.transaction():
            row = await con.fetchrow(
                "SELECT id, status FROM assignments WHERE id = $1 FOR UPDATE", aid
            )
            await con.execute(
                "UPDATE assignments SET status = 'accepted', accepted_at = now(),"
                " version = version + 1 WHERE id = $1",
                aid,
            )
            await con.execute(
                "INSERT INTO audit_log (actor, actor_role, action, object_type, object_id,"
                " before, after, request_id) VALUES ('bench', 'volunteer', 'accepted',"
                " 'assignment', $1, $2::jsonb, $3::jsonb, NULL)",
                aid,
                json.dumps({"status": row["status"]}),
                json.dumps({"status": "accepted"}),
            )
        return web.json_response({"id": aid, "status": "accepted"})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["pool"] = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_max)
        yield
        await app["pool"].close()

    app = web.Application()
    app.router.add_post("/insert", insert)
    app.router.add_post("/v1/assignments/{id}/{verb}", answer)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(ctx)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def batch_sizes(served: Served) -> dict[str, float]:
    """The app's answer batch-size histogram (``muster_answer_batch_size``) from ``/metrics``:
    cumulative count per bucket bound, plus ``sum`` and ``count``."""
    import aiohttp

    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as session, session.get(f"{served.url}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        if line.startswith("muster_answer_batch_size_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[bound] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(("muster_answer_batch_size_sum", "muster_answer_batch_size_count")):
            out[line.split(" ", 1)[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return out


def describe_batches(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, str]]:
    """Mean batch size over the measured rounds, and bucket bounds of the median and largest."""
    n = after.get("count", 0) - before.get("count", 0)
    if n <= 0:
        return [("answer batches (transactions)", "0")]
    mean = (after["sum"] - before["sum"]) / n
    bounds = [b for b in after if b not in ("sum", "count")]
    delta = {b: after[b] - before.get(b, 0) for b in bounds}
    median = next(b for b in bounds if delta[b] >= n / 2)
    largest = next(b for b in bounds if delta[b] >= n)
    return [
        ("answer batches (transactions) in the measured rounds", f"{n:.0f}"),
        ("answers a batch: mean", f"{mean:.1f}"),
        ("answers a batch: median / largest (histogram bucket, ≤)", f"{median} / {largest}"),
    ]


def describe(name: str, r: Result) -> list[tuple[str, str]]:
    other = {k: v for k, v in r.statuses.items() if k not in (200, 201)}
    return [
        (f"{name}: requests / s (median round)", f"{r.rate:.0f}"),
        (f"{name}: p50 latency (ms)", f"{percentile(r.latencies, 0.5) * 1000:.1f}"),
        (f"{name}: p99 latency (ms)", f"{percentile(r.latencies, 0.99) * 1000:.1f}"),
        (f"{name}: server CPU per request (ms)", f"{r.server_cpu_s / len(r.latencies) * 1000:.2f}"),
        (f"{name}: non-2xx answers", str(other or 0)),
    ]


def merge(parts: list[Result]) -> Result:
    """Several measured rounds as one: rate is the median round's, latencies pooled."""
    out = Result(0.0)
    for p in parts:
        out.latencies += p.latencies
        out.server_cpu_s += p.server_cpu_s
        for k, v in p.statuses.items():
            out.statuses[k] = out.statuses.get(k, 0) + v
    out.latencies.sort()
    rates = sorted(p.rate for p in parts)
    median = rates[len(rates) // 2]
    out.seconds = len(out.latencies) / median
    return out


def chunks(items: list[Request], n: int) -> list[list[Request]]:
    size = -(-len(items) // n)
    return [items[k : k + size] for k in range(0, len(items), size)]


async def run(
    n_offers: int, concurrency: int, warmup: int, pool_max: int, mix: str, rounds: int
) -> None:
    async with fresh_database("bench_answers") as dsn:
        total = 2 * (n_offers + warmup)
        print(f"seeding {total} volunteers with one offer each ...", file=sys.stderr)
        seeded = await seed_volunteers(dsn, total, offers=True)
        import asyncpg

        con = await asyncpg.connect(dsn)
        await con.execute(
            "CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, reason text,"
            " at timestamptz NOT NULL)"
        )
        await con.close()
        all_answers = answers(seeded.offers, seeded.tokens, mix)
        half = n_offers + warmup
        warm, measured = all_answers[:warmup], all_answers[warmup:half]
        tx_warm, tx_measured = all_answers[half : half + warmup], all_answers[half + warmup :]
        tokens = list(seeded.tokens.values())

        port = free_port()
        argv = [
            "-m",
            "bench.delivery_answers",
            "--ceiling-server",
            str(port),
            "--dsn",
            dsn,
            "--pool-max",
            str(pool_max),
        ]
        # Both servers run side by side and the three loads take turns, round after round:
        # other work on the machine then weighs on all three alike.
        async with serve(argv, port=port) as bare, serve_app(dsn, pool_max=pool_max) as app:
            await drive(bare, inserts(warmup, tokens), concurrency)
            await drive(bare, tx_warm, concurrency)
            await drive(app, warm, concurrency)
            batches_before = await batch_sizes(app)
            parts: dict[str, list[Result]] = {"ceiling": [], "tx": [], "app": []}
            for tx_part, app_part in zip(
                chunks(tx_measured, rounds), chunks(measured, rounds), strict=True
            ):
                parts["ceiling"].append(
                    await drive(bare, inserts(len(app_part), tokens), concurrency)
                )
                parts["tx"].append(await drive(bare, tx_part, concurrency))
                parts["app"].append(await drive(app, app_part, concurrency))
            batches = describe_batches(batches_before, await batch_sizes(app))
        ceiling, bare_tx, real = (merge(parts[k]) for k in ("ceiling", "tx", "app"))

        # Every measured answer must have been applied exactly once.
        con = await asyncpg.connect(dsn)
        counts = dict(
            await con.fetch(
                "SELECT status, count(*) FROM assignments WHERE id = ANY($1) GROUP BY status",
                [a.path.split("/")[3] for a in measured],
            )
        )
        audited = await con.fetchval(
            "SELECT count(*) FROM audit_log WHERE object_type = 'assignment'"
            " AND action IN ('accepted', 'declined') AND actor <> 'bench'"
        )
        await con.close()

        ratio = real.rate / ceiling.rate
        print(
            f"## Answers: {len(measured)} answers ({mix}) over {concurrency} connections, "
            f"{rounds} rounds (after {warmup} warm-up), pool {pool_max}\n"
        )
        rows = describe("ceiling: bare INSERT endpoint", ceiling)
        rows += describe("accept/decline through the app", real)
        rows += describe("reference: bare answer transaction (lock, update, audit)", bare_tx)
        rows += [
            (
                "answers stored (accepted / declined)",
                f"{counts.get('accepted', 0)} / {counts.get('declined', 0)}",
            ),
            ("audit entries for answers through the app (incl. warm-up)", str(audited)),
            *batches,
            (
                "per-round answers ÷ ceiling",
                " ".join(
                    f"{a.rate / c.rate:.0%}"
                    for a, c in zip(parts["app"], parts["ceiling"], strict=True)
                ),
            ),
            ("reference ÷ ceiling", f"{bare_tx.rate / ceiling.rate:.0%}"),
            ("answers ÷ ceiling", f"{ratio:.0%}"),
            ("target", f"≥ 50 %: {'met' if ratio >= 0.5 else 'NOT met'}"),
        ]
        print(table(rows))
        print(f"\n({load_note()}; server, PostgreSQL and load generator share these CPUs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_answers", description=__doc__)
    parser.add_argument("--offers", type=int, default=3000, help="answers measured")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--pool-max", type=int, default=10, help="pool size of both servers")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measured rounds")
    parser.add_argument("--mix", choices=["both", "accept", "decline"], default="both")
    parser.add_argument("--ceiling-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ceiling_server:
        ceiling_server(args.dsn, args.ceiling_server, args.pool_max)
        return 0
    asyncio.run(
        run(args.offers, args.concurrency, args.warmup, args.pool_max, args.mix, args.rounds)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
