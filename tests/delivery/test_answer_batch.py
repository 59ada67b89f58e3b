"""Group commit for answers (``dispatch/storage/answer_batch.py``, migration 0012): answers that
arrive together share one transaction, and each keeps its own guarantees — stored exactly once
with its audit row and key, untouched by a stale or failing neighbour, never half written."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from api.keys import ANSWER_READS, ANSWERS
from dispatch.assignments import Status
from dispatch.audit import AuditContext
from dispatch.clock import ManualClock
from dispatch.storage import answers, audit_log
from dispatch.storage.answer_batch import AnswerBatch, Batch
from dispatch.storage.database import create_pool
from dispatch.tokens import hash_secret, new_secret
from tests.conftest import bearer
from tests.delivery.conftest import WAIT_S, incident
from tests.engine.conftest import build_city, roster
from tests.pg_locks import blocked_by_me

N = 50


async def _offers(
    client: Any, admin: str, pool: Any, clock: ManualClock, n: int
) -> dict[str, tuple[str, str]]:
    """``n`` volunteers with one open offer each: person id -> (assignment id, token)."""
    await build_city(client, admin, roster(n))
    r = await client.post("/v1/incidents", json=incident("i-big", n=n), headers=bearer(admin))
    assert r.status == 201, await r.text()
    people = [p["id"] for p in roster(n)][:n]
    now = clock.now()
    rows = await pool.fetch(
        "INSERT INTO assignments (person_id, incident_id, skill, status, mode_key, reason,"
        " offer_deadline, proposed_at, offered_at)"
        " SELECT p, 'i-big', 'first_aid', 'offered', 'emergency', 'test', $2, $3, $3"
        " FROM unnest($1::text[]) AS p RETURNING id, person_id",
        people,
        now + timedelta(hours=1),
        now,
    )
    out = {}
    for row in rows:
        secret = new_secret()
        await pool.execute(
            "INSERT INTO api_tokens (id, token_hash, role, person_id, label)"
            " VALUES ($1, $2, 'volunteer', $3, 'test')",
            uuid.uuid4(),
            hash_secret(secret),
            row["person_id"],
        )
        out[row["person_id"]] = (row["id"], secret)
    return out


async def _planned(
    pool: Any,
    secret: str,
    assignment_id: str,
    target: Status,
    key: str | None,
    now: Any,
    *,
    token: str | None = None,
) -> answers.Answer:
    """An answer as the handler would hand it over: read, checked, its response known."""
    async with pool.acquire() as con:
        seen = await answers.read(con, hash_secret(secret), key, assignment_id)
    assert seen is not None and seen.stored is None
    reason = "flu" if target is Status.DECLINED else ""
    planned = answers.plan(seen, assignment_id, target, reason, now)
    who = seen.principal
    verb = "accept" if target is Status.ACCEPTED else "decline"
    keyed = (
        answers.Keyed(key, "POST", f"/v1/assignments/{assignment_id}/{verb}", "d") if key else None
    )
    ctx = AuditContext(who.actor, who.role.value, f"r-{key}", now)
    if token is not None:  # a token that is not in the database: its key breaks a foreign key
        who = dataclasses.replace(who, token_id=token)
    body = json.dumps(planned.after).encode()
    return answers.Answer(who, ctx, planned, keyed, body, "application/json", now)


async def _written(pool: Any, assignment_id: str) -> tuple[str, int, int]:
    """The offer's status, its answer audit rows, and the keys stored for its answers."""
    return (
        await pool.fetchval("SELECT status FROM assignments WHERE id = $1", assignment_id),
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE object_type = 'assignment' AND object_id = $1"
            " AND action IN ('accepted', 'declined')",
            assignment_id,
        ),
        await pool.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE path LIKE '%' || $1 || '%'",
            assignment_id,
        ),
    )


async def test_answers_arriving_together_share_commits_and_each_is_stored_once(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    offers = await _offers(eng_client, admin_token, pool, clock, N)
    batch: AnswerBatch = eng_client.server.app[ANSWERS]
    listener = await asyncpg.connect(db_dsn)
    notes: list[dict[str, Any]] = []
    seen_all = asyncio.Event()

    def heard(_c: Any, _pid: int, _ch: str, payload: str) -> None:
        notes.append(json.loads(payload))
        events = [e for n in notes for e in n["events"] if e["kind"] == "assignment_status"]
        if len(events) >= N:
            seen_all.set()

    await listener.add_listener("muster_events", heard)
    try:
        batches, stored = batch.batches, batch.items
        reads: Batch[Any, Any] = eng_client.server.app[ANSWER_READS]
        read_batches, read = reads.batches, reads.items

        def post(k: int, pid: str) -> Any:
            aid, secret = offers[pid]
            headers = {**bearer(secret), "Idempotency-Key": f"key-{pid}"}
            if k % 2 == 0:
                return eng_client.post(f"/v1/assignments/{aid}/accept", headers=headers)
            return eng_client.post(
                f"/v1/assignments/{aid}/decline", json={"reason": "flu"}, headers=headers
            )

        responses = await asyncio.gather(*(post(k, pid) for k, pid in enumerate(offers)))
        bodies = [await r.read() for r in responses]
        assert [r.status for r in responses] == [200] * N
        # Fewer transactions than answers, every answer in exactly one of them.
        assert batch.items - stored == N
        assert batch.batches - batches < N
        assert reads.items - read == N and reads.batches - read_batches < N
        await asyncio.wait_for(seen_all.wait(), WAIT_S)
        events = [e for n in notes for e in n["events"] if e["kind"] == "assignment_status"]
        assert sorted(e["id"] for e in events) == sorted(aid for aid, _ in offers.values())
        assert len(notes) < N
    finally:
        await listener.close()

    for k, (pid, (aid, _)) in enumerate(offers.items()):
        expected = "accepted" if k % 2 == 0 else "declined"
        assert await _written(pool, aid) == (expected, 1, 1), pid
        audit = await pool.fetchrow(
            "SELECT actor, actor_role, request_id FROM audit_log WHERE object_id = $1", aid
        )
        token = await pool.fetchval("SELECT id FROM api_tokens WHERE person_id = $1", pid)
        assert audit["actor"] == f"token:{token}" and audit["actor_role"] == "volunteer"
        key = await pool.fetchrow(
            "SELECT status_code, response_body FROM idempotency_keys WHERE key = $1", f"key-{pid}"
        )
        assert key["status_code"] == 200 and bytes(key["response_body"]) == bodies[k]
    request_ids = await pool.fetch(
        "SELECT DISTINCT request_id FROM audit_log WHERE action IN ('accepted', 'declined')"
    )
    assert len(request_ids) == N
    assert await pool.fetchval("SELECT count(*) FROM pair_rules WHERE rule = 'declined'") == N // 2
    assert await pool.fetchval("SELECT replan_due_at IS NOT NULL FROM engine_state")

    # Every retry replays its answer and changes nothing.
    again = await asyncio.gather(*(post(k, pid) for k, pid in enumerate(offers)))
    assert [r.headers.get("Idempotent-Replayed") for r in again] == ["true"] * N
    assert [await r.read() for r in again] == bodies
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action IN ('accepted', 'declined')"
        )
        == N
    )
    async with pool.acquire() as con:
        report = await audit_log.verify(con)
    assert report.ok, report


async def test_a_stale_answer_in_a_batch_leaves_the_others_alone(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    offers = await _offers(eng_client, admin_token, pool, clock, 3)
    (a1, s1), (a2, s2), (a3, s3) = offers.values()
    now = clock.now()
    items = [
        await _planned(pool, s1, a1, Status.ACCEPTED, "k1", now),
        await _planned(pool, s2, a2, Status.DECLINED, "k2", now),
        await _planned(pool, s3, a3, Status.DECLINED, "k3", now),
    ]
    await pool.execute("UPDATE assignments SET reason = 'changed' WHERE id = $1", a2)
    async with pool.acquire() as con:
        outcomes = await answers.commit(con, items)
    assert outcomes == [answers.Outcome.DONE, answers.Outcome.RETRY, answers.Outcome.DONE]
    assert await _written(pool, a1) == ("accepted", 1, 1)
    assert await _written(pool, a2) == ("offered", 0, 0)
    assert await _written(pool, a3) == ("declined", 1, 1)
    assert await pool.fetchval("SELECT count(*) FROM pair_rules WHERE rule = 'declined'") == 1


async def test_answers_to_one_offer_in_one_batch_apply_once(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    """A retried key, and a second answer to the same offer, in the batch of the first: only
    the first is written; the others read again (and then replay, or get the 409)."""
    offers = await _offers(eng_client, admin_token, pool, clock, 3)
    (a1, s1), (a2, s2), _ = offers.values()
    now = clock.now()
    first = await _planned(pool, s1, a1, Status.ACCEPTED, "same", now)
    retry = await _planned(pool, s1, a1, Status.ACCEPTED, "same", now)
    other = await _planned(pool, s1, a1, Status.DECLINED, "other", now)
    # The same key again, for another request of the same token: the key was taken.
    theirs = await _planned(pool, s2, a2, Status.ACCEPTED, "k2", now)
    reused = answers.Answer(
        first.who, first.ctx, theirs.planned, first.keyed, theirs.body, first.content_type, now
    )
    async with pool.acquire() as con:
        outcomes = await answers.commit(con, [first, retry, other, reused])
    done, again = answers.Outcome.DONE, answers.Outcome.RETRY
    assert outcomes == [done, again, again, again]
    assert await _written(pool, a1) == ("accepted", 1, 1)
    assert await _written(pool, a2) == ("offered", 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 1
    assert await pool.fetchval("SELECT count(*) FROM pair_rules") == 0


async def test_a_failing_batch_is_stored_answer_by_answer(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    """One answer breaks a constraint (its key names a token that does not exist): the batch
    rolls back, each answer is tried alone, the bad one fails alone and writes nothing."""
    offers = await _offers(eng_client, admin_token, pool, clock, 4)
    now = clock.now()
    items = []
    for k, (aid, secret) in enumerate(offers.values()):
        target = Status.ACCEPTED if k % 2 == 0 else Status.DECLINED
        bogus = str(uuid.uuid4()) if k == 1 else None
        items.append(await _planned(pool, secret, aid, target, f"k{k}", now, token=bogus))
    sizes: list[int] = []
    batch = AnswerBatch(pool, observe=sizes.append)
    outcomes = await asyncio.gather(*(batch.store(i) for i in items), return_exceptions=True)
    await batch.close()
    done = answers.Outcome.DONE
    assert outcomes[0] is done and outcomes[2] is done and outcomes[3] is done
    assert isinstance(outcomes[1], asyncpg.ForeignKeyViolationError)
    assert sizes == [1, 1, 1]  # the batch of four failed; three stored alone
    ids = [aid for aid, _ in offers.values()]
    assert await _written(pool, ids[0]) == ("accepted", 1, 1)
    assert await _written(pool, ids[1]) == ("offered", 0, 0)
    assert await _written(pool, ids[2]) == ("accepted", 1, 1)
    assert await _written(pool, ids[3]) == ("declined", 1, 1)
    async with pool.acquire() as con:
        report = await audit_log.verify(con)
    assert report.ok, report


async def test_a_lone_answer_is_written_at_once(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    offers = await _offers(eng_client, admin_token, pool, clock, 1)
    (aid, secret) = next(iter(offers.values()))
    sizes: list[int] = []
    batch = AnswerBatch(pool, observe=sizes.append)
    item = await _planned(pool, secret, aid, Status.ACCEPTED, None, clock.now())
    assert await asyncio.wait_for(batch.store(item), WAIT_S) is answers.Outcome.DONE
    assert sizes == [1] and batch.batches == 1
    assert (await _written(pool, aid))[:2] == ("accepted", 1)


async def test_a_batch_whose_connection_dies_leaves_no_request_waiting(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    """The batch's connection is killed mid-transaction: each answer is tried again alone, and
    each caller gets its outcome (nothing was written by the killed transaction)."""
    n = 2
    offers = await _offers(eng_client, admin_token, pool, clock, n)
    now = clock.now()
    items = [
        await _planned(pool, secret, aid, Status.ACCEPTED, f"k{k}", now)
        for k, (aid, secret) in enumerate(offers.values())
    ]
    blocker = await asyncpg.connect(db_dsn)
    try:
        # Hold the first offer's row, so that the batch's transaction waits on it; then kill
        # the backend that waits.
        await blocker.execute("BEGIN")
        await blocker.execute(
            "SELECT FROM assignments WHERE id = $1 FOR UPDATE", items[0].planned.assignment_id
        )
        batch = AnswerBatch(pool)
        pending = asyncio.gather(*(batch.store(i) for i in items), return_exceptions=True)
        waiting = await blocked_by_me(blocker, within=WAIT_S, what="the batch")
        killed = await blocker.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest($1::int[]) pid",
            waiting,
        )
        assert killed >= 1
        await blocker.execute("ROLLBACK")
        outcomes = await asyncio.wait_for(pending, WAIT_S)
        await batch.close()
    finally:
        await blocker.close()
    assert outcomes == [answers.Outcome.DONE] * n
    for item in items:
        assert await _written(pool, item.planned.assignment_id) == ("accepted", 1, 1)


async def test_answers_fail_rather_than_wait_when_no_connection_can_be_had(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    offers = await _offers(eng_client, admin_token, pool, clock, 2)
    now = clock.now()
    items = [
        await _planned(pool, secret, aid, Status.ACCEPTED, f"k{k}", now)
        for k, (aid, secret) in enumerate(offers.values())
    ]
    closed = await create_pool(db_dsn, min_size=1, max_size=1)
    await closed.close()
    batch = AnswerBatch(closed)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(batch.store(i) for i in items), return_exceptions=True), WAIT_S
    )
    assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes), outcomes
    for item in items:
        assert await _written(pool, item.planned.assignment_id) == ("offered", 0, 0)


async def test_a_request_and_its_retry_arriving_together_apply_once(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    """Each answer is sent twice at the same moment with one Idempotency-Key (a client that
    retried at once): both get the same answer, and it is stored once."""
    offers = await _offers(eng_client, admin_token, pool, clock, 10)

    def post(pid: str) -> Any:
        aid, secret = offers[pid]
        headers = {**bearer(secret), "Idempotency-Key": f"twice-{pid}"}
        return eng_client.post(
            f"/v1/assignments/{aid}/decline", json={"reason": "flu"}, headers=headers
        )

    responses = await asyncio.gather(*(post(pid) for pid in offers for _ in range(2)))
    assert [r.status for r in responses] == [200] * 20
    bodies = [await r.read() for r in responses]
    assert all(bodies[k] == bodies[k + 1] for k in range(0, 20, 2))
    for aid, _ in offers.values():
        assert await _written(pool, aid) == ("declined", 1, 1)
    assert await pool.fetchval("SELECT count(*) FROM pair_rules WHERE rule = 'declined'") == 10


async def test_a_bad_token_read_with_others_is_refused_alone(
    eng_client: Any, admin_token: str, pool: Any, clock: ManualClock
) -> None:
    """Reads are batched too: an unknown or revoked token among them gets its 401, the others
    their answers."""
    offers = await _offers(eng_client, admin_token, pool, clock, 6)
    ids = list(offers)
    await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE person_id = $1", ids[0])
    calls = []
    for k, pid in enumerate(ids):
        aid, secret = offers[pid]
        token = "nope" if k == 1 else secret
        headers = {**bearer(token), "Idempotency-Key": f"k-{pid}"}
        calls.append(eng_client.post(f"/v1/assignments/{aid}/accept", headers=headers))
    responses = await asyncio.gather(*calls)
    assert [r.status for r in responses] == [401, 401, 200, 200, 200, 200]
    for k, pid in enumerate(ids):
        expected = ("offered", 0, 0) if k < 2 else ("accepted", 1, 1)
        assert await _written(pool, offers[pid][0]) == expected
