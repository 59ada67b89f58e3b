"""API tokens: created by admins within their scope, stored only as hashes, revocable."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from tests.conftest import bearer, make_token

TREE = [
    {"code": "sh", "kind": "city", "name": "Shanghai"},
    {"code": "pd", "parent": "sh", "kind": "district", "name": "Pudong"},
    {"code": "hp", "parent": "sh", "kind": "district", "name": "Huangpu"},
    {"code": "pd-lujiazui", "parent": "pd", "kind": "street", "name": "Lujiazui"},
]


async def _tree(client: Any, admin: str) -> None:
    for body in TREE:
        r = await client.post("/v1/jurisdictions", json=body, headers=bearer(admin))
        assert r.status == 201, await r.text()


async def _person(dsn: str, pid: str, jurisdiction: str) -> None:
    """A roster entry straight in the database (the people API is not under test here)."""
    con = await asyncpg.connect(dsn)
    try:
        await con.execute(
            "INSERT INTO people (id, kind, name, jurisdiction_code, home_lat, home_lon)"
            " VALUES ($1, 'volunteer', $1, $2, 31.2, 121.5)",
            pid,
            jurisdiction,
        )
    finally:
        await con.close()


async def _create(client: Any, token: str, body: dict[str, Any]) -> Any:
    return await client.post("/v1/tokens", json=body, headers=bearer(token))


async def test_admin_creates_a_token_whose_secret_is_shown_once_and_stored_only_hashed(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _tree(client, admin_token)
    r = await _create(client, admin_token, {"role": "coordinator", "jurisdiction": "pd"})
    assert r.status == 201, await r.text()
    created = await r.json()
    secret = created["token"]
    assert secret.startswith("mst_") and len(secret) > 40
    assert {k: created[k] for k in ("role", "jurisdiction", "person", "revoked_at")} == {
        "role": "coordinator",
        "jurisdiction": "pd",
        "person": None,
        "revoked_at": None,
    }

    # The secret works straight away, with the token's role and scope.
    r = await client.get("/v1/jurisdictions", headers=bearer(secret))
    assert [j["code"] for j in (await r.json())["items"]] == ["pd", "pd-lujiazui"]

    # It is never shown again: not in the list, not in the audit log, not in the database.
    r = await client.get("/v1/tokens", headers=bearer(admin_token))
    listed = (await r.json())["items"]
    assert created["id"] in [t["id"] for t in listed]
    assert secret not in await r.text()
    con = await asyncpg.connect(db_dsn)
    try:
        stored = await con.fetchrow("SELECT * FROM api_tokens WHERE id = $1::uuid", created["id"])
        every_token = await con.fetchval("SELECT string_agg(t::text, '|') FROM api_tokens AS t")
        audit = await con.fetchval("SELECT string_agg(a::text, '|') FROM audit_log AS a")
    finally:
        await con.close()
    assert bytes(stored["token_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in every_token
    assert secret.encode().hex() not in every_token
    assert created["id"] in audit and secret not in audit


async def test_a_revoked_token_is_refused(client: Any, admin_token: str, db_dsn: str) -> None:
    await _tree(client, admin_token)
    created = await (
        await _create(client, admin_token, {"role": "observer", "jurisdiction": "sh"})
    ).json()
    secret = created["token"]
    assert (await client.get("/v1/jurisdictions", headers=bearer(secret))).status == 200

    r = await client.post(f"/v1/tokens/{created['id']}/revoke", headers=bearer(admin_token))
    assert r.status == 200
    assert (await r.json())["revoked_at"] is not None

    r = await client.get("/v1/jurisdictions", headers=bearer(secret))
    assert r.status == 401
    assert r.content_type == "application/problem+json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Revoking again is harmless; an unknown id is a 404.
    r = await client.post(f"/v1/tokens/{created['id']}/revoke", headers=bearer(admin_token))
    assert r.status == 200
    r = await client.post("/v1/tokens/not-a-uuid/revoke", headers=bearer(admin_token))
    assert r.status == 404


@pytest.mark.parametrize("role", ["coordinator", "trainer", "observer"])
async def test_non_admins_cannot_create_list_or_revoke_tokens(
    client: Any, admin_token: str, db_dsn: str, role: str
) -> None:
    await _tree(client, admin_token)
    token = await make_token(db_dsn, role, "sh")
    r = await _create(client, token, {"role": "observer", "jurisdiction": "pd"})
    assert r.status == 403
    assert r.content_type == "application/problem+json"
    assert (await client.get("/v1/tokens", headers=bearer(token))).status == 403
    admin_id = (await (await client.get("/v1/tokens", headers=bearer(admin_token))).json())[
        "items"
    ][0]["id"]
    r = await client.post(f"/v1/tokens/{admin_id}/revoke", headers=bearer(token))
    assert r.status == 403
    assert (await client.get("/v1/tokens", headers=bearer(admin_token))).status == 200


async def test_a_volunteer_token_cannot_touch_tokens(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _tree(client, admin_token)
    await _person(db_dsn, "vol-1", "pd")
    token = await make_token(db_dsn, "volunteer", person="vol-1")
    r = await _create(client, token, {"role": "admin"})
    assert r.status == 403


async def test_a_scoped_admin_creates_tokens_only_inside_its_scope(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _tree(client, admin_token)
    await _person(db_dsn, "vol-pd", "pd-lujiazui")
    await _person(db_dsn, "vol-hp", "hp")
    scoped = await make_token(db_dsn, "admin", "pd")
    count_before = await _token_count(db_dsn)

    refused = [
        ({"role": "coordinator", "jurisdiction": "hp"}, 403),
        ({"role": "admin", "jurisdiction": "sh"}, 403),
        ({"role": "admin"}, 422),  # an unscoped admin would escape the scope
        ({"role": "volunteer", "person": "vol-hp"}, 403),
        ({"role": "coordinator", "jurisdiction": "nowhere"}, 422),
    ]
    for body, status in refused:
        r = await _create(client, scoped, body)
        assert r.status == status, (body, await r.text())
        assert r.content_type == "application/problem+json"
    assert await _token_count(db_dsn) == count_before

    for body in (
        {"role": "coordinator", "jurisdiction": "pd-lujiazui"},
        {"role": "admin", "jurisdiction": "pd"},
        {"role": "volunteer", "person": "vol-pd"},
    ):
        r = await _create(client, scoped, body)
        assert r.status == 201, (body, await r.text())
    volunteer_id = (await r.json())["id"]

    # The scoped admin lists only tokens placed in its subtree, and can revoke what it lists.
    r = await client.get("/v1/tokens", headers=bearer(scoped))
    listed = (await r.json())["items"]
    assert volunteer_id in [t["id"] for t in listed]
    assert all(t["jurisdiction"] in ("pd", "pd-lujiazui", None) for t in listed)
    assert all(t["person"] == "vol-pd" for t in listed if t["jurisdiction"] is None)
    r = await client.post(f"/v1/tokens/{volunteer_id}/revoke", headers=bearer(scoped))
    assert r.status == 200, await r.text()
    # The unscoped admin's token is outside the scope: not even its existence leaks.
    all_tokens = (await (await client.get("/v1/tokens", headers=bearer(admin_token))).json())[
        "items"
    ]
    root = next(t for t in all_tokens if t["role"] == "admin" and t["jurisdiction"] is None)
    r = await client.post(f"/v1/tokens/{root['id']}/revoke", headers=bearer(scoped))
    assert r.status == 404


async def _token_count(dsn: str) -> int:
    con = await asyncpg.connect(dsn)
    try:
        n: int = await con.fetchval("SELECT count(*) FROM api_tokens")
        return n
    finally:
        await con.close()


async def test_a_volunteer_token_must_be_bound_to_an_existing_person(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _tree(client, admin_token)
    await _person(db_dsn, "vol-1", "pd")
    before = await _token_count(db_dsn)
    for body, loc in (
        ({"role": "volunteer"}, None),
        ({"role": "volunteer", "person": "ghost"}, "/person"),
        ({"role": "coordinator", "jurisdiction": "pd", "person": "vol-1"}, None),
        ({"role": "coordinator"}, None),
        ({"role": "wizard"}, "/role"),
    ):
        r = await _create(client, admin_token, body)
        assert r.status == 422, (body, await r.text())
        problem = await r.json()
        assert problem["errors"], problem
        if loc:
            assert loc in [e["loc"] for e in problem["errors"]]
    assert await _token_count(db_dsn) == before

    r = await _create(client, admin_token, {"role": "volunteer", "person": "vol-1"})
    assert r.status == 201
    secret = (await r.json())["token"]
    # Authenticated (not 401) but a volunteer may not list jurisdictions.
    assert (await client.get("/v1/jurisdictions", headers=bearer(secret))).status == 403


def _muster(dsn: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=dsn, MUSTER_LOG_FORMAT="text")
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_cli_prints_a_working_token_and_revokes_it(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await _tree(client, admin_token)
    done = await asyncio.to_thread(
        _muster, db_dsn, "token", "create", "--role", "coordinator", "--jurisdiction", "hp"
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("mst_") and "\n" not in secret
    r = await client.get("/v1/jurisdictions", headers=bearer(secret))
    assert r.status == 200
    assert [j["code"] for j in (await r.json())["items"]] == ["hp"]

    token_id = done.stderr.split("token id ")[1].split()[0]
    done = await asyncio.to_thread(_muster, db_dsn, "token", "revoke", token_id)
    assert done.returncode == 0, done.stderr
    assert (await client.get("/v1/jurisdictions", headers=bearer(secret))).status == 401
    # The CLI's revocation is audited with before/after like the API's.
    r = await client.get(
        "/v1/audit",
        params={"object_type": "token", "object_id": token_id},
        headers=bearer(admin_token),
    )
    entries = (await r.json())["items"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("create", "system:cli"),
        ("revoke", "system:cli"),
    ]
    assert entries[1]["before"]["revoked_at"] is None and entries[1]["after"]["revoked_at"]


async def test_the_cli_refuses_a_token_without_its_scope(db_dsn: str) -> None:
    done = await asyncio.to_thread(_muster, db_dsn, "token", "create", "--role", "coordinator")
    assert done.returncode != 0
    assert done.stdout == ""
    assert "jurisdiction" in done.stderr
    assert await _token_count(db_dsn) == 0
