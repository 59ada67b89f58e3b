"""The audit log: written with the change, append-only in the database, tamper-evident."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from api.keys import AUDIT_SEALER
from tests.conftest import bearer, make_token

DISTRICTS = [("pd", "Pudong"), ("hp", "Huangpu"), ("xh", "Xuhui"), ("ja", "Jing'an")]


async def _seed(client: Any, token: str) -> None:
    h = bearer(token)
    r = await client.post(
        "/v1/jurisdictions", json={"code": "sh", "kind": "city", "name": "Shanghai"}, headers=h
    )
    assert r.status == 201, await r.text()
    for code, name in DISTRICTS:
        body = {"code": code, "parent": "sh", "kind": "district", "name": name}
        r = await client.post("/v1/jurisdictions", json=body, headers=h)
        assert r.status == 201, await r.text()


async def _audit_rows(dsn: str, where: str = "TRUE", *args: Any) -> list[asyncpg.Record]:
    con = await asyncpg.connect(dsn)
    try:
        from dispatch.storage.database import _init_connection

        await _init_connection(con)
        rows: list[asyncpg.Record] = await con.fetch(
            f"SELECT * FROM audit_log WHERE {where} ORDER BY seq", *args
        )
        return rows
    finally:
        await con.close()


async def _token_id(dsn: str, secret: str) -> str:
    from dispatch.tokens import hash_secret

    con = await asyncpg.connect(dsn)
    try:
        return str(
            await con.fetchval(
                "SELECT id FROM api_tokens WHERE token_hash = $1", hash_secret(secret)
            )
        )
    finally:
        await con.close()


def _muster(dsn: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``muster`` CLI against ``dsn``."""
    env = dict(os.environ, DATABASE_URL=dsn, MUSTER_LOG_FORMAT="text")
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def muster(dsn: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_muster, dsn, *argv)


async def _tamper(dsn: str, sql: str, *args: Any) -> None:
    """Change the log behind the service's back: with the guard trigger disabled."""
    con = await asyncpg.connect(dsn)
    try:
        async with con.transaction():
            await con.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
            await con.execute(sql, *args)
            await con.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    finally:
        await con.close()


# ----------------------------------------------------------------------- written with the change


async def test_an_api_change_is_audited_with_who_what_before_after_and_request_id(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    h = bearer(admin_token)
    r = await client.post(
        "/v1/jurisdictions",
        json={"code": "sh", "kind": "city", "name": "Shanghai"},
        headers=h | {"X-Request-Id": "req-create-1"},
    )
    assert r.status == 201
    created = await r.json()
    r = await client.patch(
        "/v1/jurisdictions/sh",
        json={"name": "Shanghai Municipality"},
        headers=h | {"X-Request-Id": "req-patch-1"},
    )
    assert r.status == 200
    patched = await r.json()

    rows = await _audit_rows(db_dsn, "object_type = 'jurisdiction'")
    token_id = await _token_id(db_dsn, admin_token)
    assert [(a["action"], a["object_id"], a["request_id"]) for a in rows] == [
        ("create", "sh", "req-create-1"),
        ("update", "sh", "req-patch-1"),
    ]
    create, update = rows
    assert create["actor"] == update["actor"] == f"token:{token_id}"
    assert create["actor_role"] == "admin"
    assert create["before"] is None and create["after"] == created
    assert update["before"] == created and update["after"] == patched

    # Same transaction as the change: the audit row and the row it describes share an xmin.
    con = await asyncpg.connect(db_dsn)
    try:
        row_xmin = await con.fetchval("SELECT xmin::text FROM jurisdictions WHERE code = 'sh'")
        audit_xmin = await con.fetchval(
            "SELECT xmin::text FROM audit_log WHERE seq = $1", update["seq"]
        )
    finally:
        await con.close()
    assert row_xmin == audit_xmin


async def test_a_failed_request_writes_no_audit_row(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    before = len(await _audit_rows(db_dsn))
    h = bearer(admin_token)
    failures = [
        client.post(
            "/v1/jurisdictions", json={"code": "sh", "kind": "city", "name": "Dup"}, headers=h
        ),
        client.patch("/v1/jurisdictions/pd", json={"name": "X", "version": 99}, headers=h),
        client.delete("/v1/jurisdictions/pd", headers=h | {"If-Match": '"7"'}),
        client.post("/v1/jurisdictions", json={"code": "q", "kind": "city", "name": 7}, headers=h),
    ]
    statuses = [(await r).status for r in failures]
    assert statuses == [409, 409, 412, 422]
    assert len(await _audit_rows(db_dsn)) == before


# ------------------------------------------------------------------------ append-only in the DB


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_the_database_rejects_changes_to_the_audit_log(
    client: Any, admin_token: str, db_dsn: str, statement: str
) -> None:
    await _seed(client, admin_token)
    before = [dict(r) for r in await _audit_rows(db_dsn)]
    con = await asyncpg.connect(db_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await con.execute(statement)
    finally:
        await con.close()
    assert [dict(r) for r in await _audit_rows(db_dsn)] == before


# ------------------------------------------------------------------------------ hash chain


async def test_audit_verify_passes_on_an_intact_log(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    rows = await _audit_rows(db_dsn)
    done = await muster(db_dsn, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"audit log OK: {len(rows)} rows, head {rows[-1]['hash']}" in done.stdout


async def test_audit_verify_names_a_row_changed_behind_the_services_back(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    victim = (await _audit_rows(db_dsn, "object_id = 'hp'"))[0]["seq"]
    await _tamper(
        db_dsn,
        """UPDATE audit_log SET after = jsonb_set(after, '{name}', '"Forged"') WHERE seq = $1""",
        victim,
    )
    done = await muster(db_dsn, "audit", "verify")
    assert done.returncode != 0
    assert f"BROKEN at seq {victim}:" in done.stdout
    assert "does not match its hash" in done.stdout

    # The API reports the same break.
    r = await client.get("/v1/audit/verify", headers=bearer(admin_token))
    report = await r.json()
    assert (report["ok"], report["first_bad_seq"]) == (False, victim)


async def test_audit_verify_detects_a_recomputed_hash_by_the_broken_link(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    """A forger who also rewrites the row's hash breaks the next row's link instead."""
    await _seed(client, admin_token)
    victim = (await _audit_rows(db_dsn, "object_id = 'hp'"))[0]["seq"]
    await _tamper(
        db_dsn,
        """UPDATE audit_log AS a SET after = jsonb_set(after, '{name}', '"Forged"')
           WHERE seq = $1""",
        victim,
    )
    await _tamper(
        db_dsn, "UPDATE audit_log AS a SET hash = audit_row_hash(a) WHERE seq = $1", victim
    )
    done = await muster(db_dsn, "audit", "verify")
    assert done.returncode != 0
    assert f"BROKEN at seq {victim + 1}: link to the previous row is broken" in done.stdout


async def test_audit_verify_detects_a_deleted_row(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    victim = (await _audit_rows(db_dsn, "object_id = 'hp'"))[0]["seq"]
    await _tamper(db_dsn, "DELETE FROM audit_log WHERE seq = $1", victim)
    done = await muster(db_dsn, "audit", "verify")
    assert done.returncode != 0
    assert f"BROKEN at seq {victim + 1}: row {victim} is missing" in done.stdout


async def test_audit_verify_detects_a_deleted_first_row(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    await _tamper(db_dsn, "DELETE FROM audit_log WHERE seq = 1")
    done = await muster(db_dsn, "audit", "verify")
    assert done.returncode != 0
    assert "BROKEN at seq 2: rows before this one are missing" in done.stdout


# --------------------------------------------------------------------------------- GET /v1/audit


async def test_audit_list_pages_through_every_entry_once_in_chain_order(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    expected = [r["seq"] for r in await _audit_rows(db_dsn)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/v1/audit", params=params, headers=bearer(admin_token))
        assert r.status == 200, await r.text()
        body = await r.json()
        assert len(body["items"]) <= 2
        seen += [e["seq"] for e in body["items"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == expected and pages >= 3


async def test_audit_list_filters_by_object_and_actor(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    h = bearer(admin_token)
    await client.patch("/v1/jurisdictions/pd", json={"name": "Pudong New Area"}, headers=h)
    r = await client.get(
        "/v1/audit", params={"object_type": "jurisdiction", "object_id": "pd"}, headers=h
    )
    items = (await r.json())["items"]
    assert [(e["action"], e["object_id"]) for e in items] == [("create", "pd"), ("update", "pd")]
    assert items[1]["before"]["name"] == "Pudong" and items[1]["after"]["name"] == "Pudong New Area"

    r = await client.get("/v1/audit", params={"object_type": "token"}, headers=h)
    token_entries = (await r.json())["items"]
    assert token_entries and {e["actor"] for e in token_entries} == {"system:test"}

    actor = f"token:{await _token_id(db_dsn, admin_token)}"
    r = await client.get("/v1/audit", params={"actor": actor}, headers=h)
    mine = (await r.json())["items"]
    assert len(mine) == 1 + len(DISTRICTS) + 1
    assert {e["actor"] for e in mine} == {actor}


async def test_audit_list_refuses_bad_filters(client: Any, admin_token: str) -> None:
    for params in ({"limit": "0"}, {"cursor": "!!"}, {"colour": "red"}):
        r = await client.get("/v1/audit", params=params, headers=bearer(admin_token))
        assert r.status == 422, params
        assert r.content_type == "application/problem+json"


@pytest.mark.parametrize("role", ["coordinator", "observer", "trainer", "scoped-admin"])
async def test_only_unscoped_admins_read_the_audit_log(
    client: Any, admin_token: str, db_dsn: str, role: str
) -> None:
    await _seed(client, admin_token)
    real_role = "admin" if role == "scoped-admin" else role
    token = await make_token(db_dsn, real_role, "pd")
    for path in ("/v1/audit", "/v1/audit/verify"):
        r = await client.get(path, headers=bearer(token))
        assert r.status == 403, (path, await r.text())
        assert r.content_type == "application/problem+json"


async def test_a_commit_that_finds_the_chain_busy_is_not_held_up_and_is_sealed_later(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    """Sealing never serialises audited commits: while another session holds the chain lock, a
    change commits at once with its audit row pending; the next seal (a commit, the service's
    sweeper, or a reader) puts it into the chain, and the chain verifies."""
    await _seed(client, admin_token)
    holder = await asyncpg.connect(db_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock(1836413812, 1)")
        r = await asyncio.wait_for(
            client.post(
                "/v1/jurisdictions",
                json={"code": "pd-1", "parent": "pd", "kind": "street", "name": "Riverside"},
                headers=bearer(admin_token),
            ),
            10,
        )
        assert r.status == 201, await r.text()
        pending = await pool.fetch("SELECT object_id, seq, hash FROM audit_log WHERE seq IS NULL")
        assert [(x["object_id"], x["hash"]) for x in pending] == [("pd-1", None)]
    finally:
        await holder.execute("SELECT pg_advisory_unlock(1836413812, 1)")
        await holder.close()

    # The app's sweeper seals it within a second or so: wait for its passes, with a deadline.
    sealer = client.server.app[AUDIT_SEALER]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while await pool.fetchval("SELECT count(*) FROM audit_log WHERE seq IS NULL"):
        try:
            await asyncio.wait_for(sealer.next_sweep(), deadline - loop.time())
        except TimeoutError:
            raise AssertionError("the pending audit row was never sealed") from None
    rows = await _audit_rows(db_dsn)
    assert [x["seq"] for x in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["object_id"] == "pd-1"
    r = await client.get("/v1/audit/verify", headers=bearer(admin_token))
    assert r.status == 200 and (await r.json())["ok"] is True


async def test_concurrent_audited_writes_form_one_gap_free_chain(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _seed(client, admin_token)
    h = bearer(admin_token)

    async def street(k: int) -> int:
        body = {"code": f"pd-{k}", "parent": "pd", "kind": "street", "name": f"Street {k}"}
        r = await client.post("/v1/jurisdictions", json=body, headers=h)
        return r.status

    assert set(await asyncio.gather(*(street(k) for k in range(60)))) == {201}
    r = await client.get("/v1/audit?limit=500", headers=h)
    items = (await r.json())["items"]
    assert [x["seq"] for x in items] == list(range(1, len(items) + 1))
    assert sorted(x["object_id"] for x in items if x["object_id"].startswith("pd-")) == sorted(
        f"pd-{k}" for k in range(60)
    )
    r = await client.get("/v1/audit/verify", headers=h)
    assert (await r.json())["ok"] is True
