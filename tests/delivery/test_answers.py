"""Answering an offer takes one transaction (``api/answers.py``, ``dispatch/storage/answers.py``):
the move, its audit row, the Idempotency-Key with the finished response, and for a decline the
pair rule and the re-plan request are written together or not at all, and the key replays the
answer byte for byte."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from dispatch.assignments import Status
from dispatch.audit import AuditContext
from dispatch.clock import ManualClock
from dispatch.storage import answers
from dispatch.tokens import hash_secret
from tests.delivery.conftest import World, make_world


async def _written(pool: Any, assignment_id: str) -> dict[str, Any]:
    """What an answer to ``assignment_id`` would have written."""
    return {
        "status": await pool.fetchval(
            "SELECT status FROM assignments WHERE id = $1", assignment_id
        ),
        "audited": await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE object_type = 'assignment' AND object_id = $1"
            " AND action IN ('accepted', 'declined')",
            assignment_id,
        ),
        "rules": await pool.fetchval("SELECT count(*) FROM pair_rules WHERE rule = 'declined'"),
    }


async def _offer(w: World, iid: str, pid: str) -> dict[str, Any]:
    await w.incident(iid)
    return await w.pin(iid, pid)


async def test_a_replayed_answer_is_byte_identical_and_applied_once(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    offer = await _offer(w, "i-a", "v-ann")
    url = f"/v1/assignments/{offer['id']}/decline"
    headers = {**w.h("v-ann"), "Idempotency-Key": "decline-1"}
    first = await eng_client.post(url, json={"reason": "flu"}, headers=headers)
    assert first.status == 200, await first.text()
    retry = await eng_client.post(url, json={"reason": "flu"}, headers=headers)
    assert retry.status == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert retry.content_type == first.content_type == "application/json"
    assert json.loads(await first.read())["decline_reason"] == "flu"
    assert await _written(pool, offer["id"]) == {"status": "declined", "audited": 1, "rules": 1}
    stored = await pool.fetchrow(
        "SELECT status_code, response_body FROM idempotency_keys WHERE key = 'decline-1'"
    )
    assert stored["status_code"] == 200 and bytes(stored["response_body"]) == await first.read()
    # The same key with another body is refused and changes nothing.
    other = await eng_client.post(url, json={"reason": "other"}, headers=headers)
    assert other.status == 422 and (await other.json())["type"].endswith("/idempotency-key-reused")
    # The decline asked for a re-plan in the same transaction.
    assert await pool.fetchval("SELECT replan_due_at IS NOT NULL FROM engine_state")


async def test_a_refused_answer_is_kept_under_its_key(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    offer = await _offer(w, "i-a", "v-ann")
    clock.set(datetime.fromisoformat(offer["offer_deadline"]) + timedelta(seconds=1))
    url = f"/v1/assignments/{offer['id']}/accept"
    headers = {**w.h("v-ann"), "Idempotency-Key": "late-1"}
    first = await eng_client.post(url, headers=headers)
    assert first.status == 409 and first.content_type == "application/problem+json"
    # Even once the deadline is moved (so that the offer could now be accepted), the key
    # replays its refusal rather than running again.
    await pool.execute(
        "UPDATE assignments SET offer_deadline = offer_deadline + interval '1 day' WHERE id = $1",
        offer["id"],
    )
    again = await eng_client.post(url, headers=headers)
    assert again.status == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    assert await _written(pool, offer["id"]) == {"status": "offered", "audited": 0, "rules": 0}
    # Another person's offer: the same 404 as an unknown id, kept under the key as well.
    theirs = await eng_client.post(url, headers={**w.h("v-bob"), "Idempotency-Key": "k"})
    unknown = await eng_client.post(
        "/v1/assignments/a-nope/accept", headers={**w.h("v-bob"), "Idempotency-Key": "k2"}
    )
    assert theirs.status == unknown.status == 404
    assert set(await theirs.json()) == set(await unknown.json())
    replay = await eng_client.post(url, headers={**w.h("v-bob"), "Idempotency-Key": "k"})
    assert replay.status == 404 and replay.headers["Idempotent-Replayed"] == "true"


async def test_answer_routes_authenticate_like_every_other_route(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    offer = await _offer(w, "i-a", "v-ann")
    url = f"/v1/assignments/{offer['id']}/accept"
    r = await eng_client.post(url)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await eng_client.post(url, headers={"Authorization": "Bearer nope", "Idempotency-Key": "x"})
    assert r.status == 401
    r = await eng_client.post(url, headers={**w.h("v-ann"), "Idempotency-Key": "k" * 201})
    assert r.status == 422
    r = await eng_client.post(
        f"/v1/assignments/{offer['id']}/decline",
        data="reason=flu",
        headers={**w.h("v-ann"), "Content-Type": "text/plain"},
    )
    assert r.status == 415
    assert await _written(pool, offer["id"]) == {"status": "offered", "audited": 0, "rules": 0}


async def test_an_answer_whose_key_is_taken_meanwhile_writes_nothing(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    """The key is stored last in the answer's transaction: when a concurrent request took it
    after the read, the move, the audit row, the pair rule and the re-plan request roll back."""
    w = await make_world(eng_client, admin_token, db_dsn)
    offer = await _offer(w, "i-a", "v-ann")
    now = clock.now()
    async with pool.acquire() as con:
        seen = await answers.read(con, hash_secret(w.tokens["v-ann"]), "k-1", offer["id"])
        assert seen is not None and seen.stored is None
        planned = answers.plan(seen, offer["id"], Status.DECLINED, "flu", now)
        keyed = answers.Keyed("k-1", "POST", f"/v1/assignments/{offer['id']}/decline", "d1")
        # A concurrent request with the same key claims it first.
        await pool.execute(
            "INSERT INTO idempotency_keys (token_id, key, method, path, request_hash)"
            " VALUES ($1, 'k-1', 'POST', '/v1/other', 'd2')",
            seen.principal.token_id,
        )
        before = await pool.fetchval("SELECT generation FROM engine_state")
        who = seen.principal
        ctx = AuditContext(who.actor, who.role.value, "r-1", now)
        body = json.dumps(planned.after).encode()
        item = answers.Answer(who, ctx, planned, keyed, body, "application/json", now)
        assert await answers.commit(con, [item]) == [answers.Outcome.RETRY]
    assert await _written(pool, offer["id"]) == {"status": "offered", "audited": 0, "rules": 0}
    assert await pool.fetchval("SELECT generation FROM engine_state") == before


async def test_an_answer_to_a_row_changed_since_the_read_writes_nothing(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    offer = await _offer(w, "i-a", "v-ann")
    now = clock.now()
    async with pool.acquire() as con:
        seen = await answers.read(con, hash_secret(w.tokens["v-ann"]), "k-2", offer["id"])
        assert seen is not None
        planned = answers.plan(seen, offer["id"], Status.ACCEPTED, "", now)
        await w.cancel(offer["id"])  # the coordinator withdraws the offer meanwhile
        who = seen.principal
        keyed = answers.Keyed("k-2", "POST", f"/v1/assignments/{offer['id']}/accept", "d")
        item = answers.Answer(
            who,
            AuditContext(who.actor, who.role.value, None, now),
            planned,
            keyed,
            json.dumps(planned.after).encode(),
            "application/json",
            now,
        )
        assert await answers.commit(con, [item]) == [answers.Outcome.RETRY]
    assert await _written(pool, offer["id"]) == {"status": "cancelled", "audited": 0, "rules": 0}
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'k-2'") == 0
    # Through the API the answer is then the clear conflict.
    r = await eng_client.post(
        f"/v1/assignments/{offer['id']}/accept", headers={**w.h("v-ann"), "Idempotency-Key": "k-2"}
    )
    assert r.status == 409 and (await r.json())["current_status"] == "cancelled"
