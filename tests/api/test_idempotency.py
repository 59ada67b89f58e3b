"""``Idempotency-Key`` on POST: a retry replays the first answer instead of acting twice."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from api.middleware import HASH_INLINE_BYTES
from tests.conftest import bearer, make_token

CITY = {"code": "sh", "kind": "city", "name": "Shanghai"}


async def _count(dsn: str, sql: str) -> int:
    con = await asyncpg.connect(dsn)
    try:
        n: int = await con.fetchval(sql)
        return n
    finally:
        await con.close()


async def _post(client: Any, token: str, key: str, body: dict[str, Any]) -> Any:
    return await client.post(
        "/v1/jurisdictions", json=body, headers=bearer(token) | {"Idempotency-Key": key}
    )


async def test_a_retried_post_creates_one_row_and_replays_the_answer(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    first = await _post(client, admin_token, "create-sh-1", CITY)
    first_body = await first.read()
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers

    again = await _post(client, admin_token, "create-sh-1", CITY)
    assert again.status == 201
    assert await again.read() == first_body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content_type == "application/json"

    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 1
    assert await _count(db_dsn, "SELECT count(*) FROM audit_log WHERE object_id = 'sh'") == 1
    # Without a key the same request really runs again (and conflicts).
    r = await client.post("/v1/jurisdictions", json=CITY, headers=bearer(admin_token))
    assert r.status == 409


async def test_reusing_a_key_for_a_different_request_is_refused(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    assert (await _post(client, admin_token, "k1", CITY)).status == 201
    r = await _post(client, admin_token, "k1", CITY | {"name": "Not Shanghai"})
    assert r.status == 422
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["type"].endswith("/idempotency-key-reused") and problem["key"] == "k1"
    r = await _post(client, admin_token, "k1", {"code": "bj", "kind": "city", "name": "Beijing"})
    assert r.status == 422
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 1
    r = await client.get("/v1/jurisdictions/sh", headers=bearer(admin_token))
    assert (await r.json())["name"] == "Shanghai"


async def test_a_failed_request_replays_the_same_client_error(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    bad = {"code": "sh", "kind": "city", "name": "Shanghai", "colour": "red"}
    first = await _post(client, admin_token, "bad-1", bad)
    assert first.status == 422
    first_body = await first.json()
    again = await _post(client, admin_token, "bad-1", bad)
    assert again.status == 422
    assert again.content_type == "application/problem+json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == first_body
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 0

    # A 409 from the use case is stored and replayed the same way.
    await client.post("/v1/jurisdictions", json=CITY, headers=bearer(admin_token))
    dup1 = await _post(client, admin_token, "dup-1", CITY)
    dup2 = await _post(client, admin_token, "dup-1", CITY)
    assert (dup1.status, dup2.status) == (409, 409)
    assert await dup1.json() == await dup2.json()


async def test_keys_belong_to_one_token(client: Any, admin_token: str, db_dsn: str) -> None:
    other_admin = await make_token(db_dsn, "admin")
    assert (await _post(client, admin_token, "shared-key", CITY)).status == 201
    beijing = {"code": "bj", "kind": "city", "name": "Beijing"}
    r = await _post(client, other_admin, "shared-key", beijing)
    assert r.status == 201, await r.text()
    assert "Idempotent-Replayed" not in r.headers
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 2
    assert await _count(db_dsn, "SELECT count(*) FROM idempotency_keys") == 2


async def test_concurrent_requests_with_one_key_create_one_row(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    answers = await asyncio.gather(*(_post(client, admin_token, "race", CITY) for _ in range(8)))
    statuses = [r.status for r in answers]
    # One runs; the others either replay its answer or are told it is still running.
    first = [r for r in answers if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(first) == 1, statuses
    for r in answers:
        if r is first[0]:
            continue
        if r.status == 201:
            assert r.headers["Idempotent-Replayed"] == "true"
        else:
            assert r.status == 409, statuses
            assert (await r.json())["type"].endswith("/request-in-progress")
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 1
    assert await _count(db_dsn, "SELECT count(*) FROM audit_log WHERE object_id = 'sh'") == 1
    # Once the first has finished, a late retry replays it.
    late = await _post(client, admin_token, "race", CITY)
    assert late.status == 201 and late.headers["Idempotent-Replayed"] == "true"


async def test_an_oversized_key_is_refused(client: Any, admin_token: str, db_dsn: str) -> None:
    r = await _post(client, admin_token, "k" * 201, CITY)
    assert r.status == 422
    assert r.content_type == "application/problem+json"
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 0


async def test_a_key_on_another_method_is_ignored(client: Any, admin_token: str) -> None:
    h = bearer(admin_token)
    await client.post("/v1/jurisdictions", json=CITY, headers=h)
    for name in ("One", "Two"):
        r = await client.patch(
            "/v1/jurisdictions/sh", json={"name": name}, headers=h | {"Idempotency-Key": "p"}
        )
        assert r.status == 200 and "Idempotent-Replayed" not in r.headers
    assert (await (await client.get("/v1/jurisdictions/sh", headers=h)).json())["version"] == 3


async def test_a_body_too_big_to_hash_inline_is_still_hashed_whole(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    # Hashed in a thread (past HASH_INLINE_BYTES), still over the whole body.
    name = "x" * (HASH_INLINE_BYTES + 1)
    big = CITY | {"name": name}
    first = await _post(client, admin_token, "big-1", big)
    assert first.status == 422  # the name is far too long
    again = await _post(client, admin_token, "big-1", big)
    assert again.status == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    other = await _post(client, admin_token, "big-1", CITY | {"name": name[:-1] + "y"})
    assert other.status == 422
    assert (await other.json())["type"].endswith("/idempotency-key-reused")
    assert await _count(db_dsn, "SELECT count(*) FROM jurisdictions") == 0
