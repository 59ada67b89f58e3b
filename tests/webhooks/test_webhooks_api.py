"""``/v1/webhooks`` administration: roles, scope, validation, secrets, concurrency; and the pure
rules (which messages an endpoint gets, the retry schedule)."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest

from dispatch import webhooks as dom
from tests.conftest import bearer, make_token
from tests.webhooks import build_tree, register

GOOD = {"url": "https://gw.example.org/hook", "jurisdiction": "a"}


async def _counts(dsn: str) -> tuple[int, int]:
    con = await asyncpg.connect(dsn)
    try:
        return (
            await con.fetchval("SELECT count(*) FROM webhook_endpoints"),
            await con.fetchval("SELECT count(*) FROM audit_log WHERE object_type = 'webhook'"),
        )
    finally:
        await con.close()


async def test_admin_registers_an_endpoint_whose_secret_is_shown_once(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_tree(client, admin_token, db_dsn)
    h = bearer(admin_token)
    ep = await register(client, admin_token, **GOOD, kinds=["offer", "released"])
    assert ep["secret"].startswith("whsec_") and len(ep["secret"]) > 40
    assert ep["kinds"] == ["offer", "released"] and ep["enabled"] is True
    r = await client.get(f"/v1/webhooks/{ep['id']}", headers=h)
    got = await r.json()
    assert r.status == 200 and "secret" not in got
    assert got["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    r = await client.get("/v1/webhooks", headers=h)
    assert [x["id"] for x in (await r.json())["items"]] == [ep["id"]]
    assert "secret" not in (await r.json())["items"][0]
    con = await asyncpg.connect(db_dsn)
    try:
        audit = await con.fetch("SELECT after::text FROM audit_log WHERE object_type='webhook'")
    finally:
        await con.close()
    assert audit and all(ep["secret"] not in (a["after"] or "") for a in audit)


async def test_patch_disables_honours_if_match_and_rotate_gives_a_new_secret(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_tree(client, admin_token, db_dsn)
    h = bearer(admin_token)
    ep = await register(client, admin_token, **GOOD)
    url = f"/v1/webhooks/{ep['id']}"
    r = await client.patch(url, json={"enabled": False}, headers={**h, "If-Match": '"7"'})
    assert r.status == 412
    r = await client.patch(url, json={"enabled": False, "kinds": ["offer"]}, headers=h)
    assert r.status == 200, await r.text()
    out = await r.json()
    assert (out["enabled"], out["kinds"], out["version"]) == (False, ["offer"], 2)
    assert r.headers["ETag"] == '"2"'
    r = await client.patch(url, json={"kinds": None, "version": 2}, headers=h)
    assert (await r.json())["kinds"] is None
    r = await client.post(f"{url}/rotate-secret", headers=h)
    assert r.status == 200, await r.text()
    rotated = await r.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != ep["secret"]
    assert rotated["previous_secret_expires_at"] is None
    r = await client.delete(url, headers=h)
    assert r.status == 204
    r = await client.get(url, headers=h)
    assert r.status == 404


async def test_non_admins_are_forbidden(client: Any, admin_token: str, db_dsn: str) -> None:
    await build_tree(client, admin_token, db_dsn)
    ep = await register(client, admin_token, **GOOD)
    coord = bearer(await make_token(db_dsn, "coordinator", "a"))
    for method, path in (
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", f"/v1/webhooks/{ep['id']}"),
        ("GET", f"/v1/webhooks/{ep['id']}/deliveries"),
        ("POST", f"/v1/webhooks/{ep['id']}/replay-dead"),
    ):
        r = await client.request(method, path, json=GOOD, headers=coord)
        assert r.status == 403, (method, path, await r.text())
        assert r.content_type == "application/problem+json"


async def test_scoped_admin_works_only_inside_its_subtree(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_tree(client, admin_token, db_dsn)
    mine = await register(client, admin_token, **GOOD)
    theirs = await register(client, admin_token, url="http://127.0.0.1:9/x", jurisdiction="b")
    scoped = bearer(await make_token(db_dsn, "admin", "a"))
    before = await _counts(db_dsn)
    r = await client.post("/v1/webhooks", json={**GOOD, "jurisdiction": "b"}, headers=scoped)
    assert r.status == 403
    r = await client.post("/v1/webhooks", json={**GOOD, "jurisdiction": "c"}, headers=scoped)
    assert r.status == 403, "the parent is outside the scope too"
    for method, path in (
        ("GET", f"/v1/webhooks/{theirs['id']}"),
        ("PATCH", f"/v1/webhooks/{theirs['id']}"),
        ("DELETE", f"/v1/webhooks/{theirs['id']}"),
        ("GET", f"/v1/webhooks/{theirs['id']}/deliveries"),
        ("POST", f"/v1/webhooks/{theirs['id']}/rotate-secret"),
        ("POST", f"/v1/webhooks/{theirs['id']}/replay-dead"),
    ):
        kw: dict[str, Any] = {"json": {"enabled": False}} if method == "PATCH" else {}
        r = await client.request(method, path, headers=scoped, **kw)
        assert r.status == 404, (method, path, await r.text())
    assert await _counts(db_dsn) == before
    r = await client.get("/v1/webhooks", headers=scoped)
    assert [x["id"] for x in (await r.json())["items"]] == [mine["id"]]
    r = await client.post("/v1/webhooks", json={**GOOD, "jurisdiction": "a-1"}, headers=scoped)
    assert r.status == 201


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**GOOD, "url": "ftp://gw.example.org/x"}, "/url"),
        ({**GOOD, "url": "https:///nohost"}, "/url"),
        ({**GOOD, "url": "https://user:pw@gw.example.org/x"}, "/url"),
        ({**GOOD, "url": "gw.example.org/x"}, "/url"),
        ({**GOOD, "url": "https://gw.example.org:99999/x"}, "/url"),
        ({**GOOD, "url": 5}, "/url"),
        ({**GOOD, "secret": "mine"}, "/secret"),
        ({**GOOD, "kinds": []}, "/kinds"),
        ({**GOOD, "kinds": ["Offer!"]}, "/kinds/0"),
        ({**GOOD, "jurisdiction": "nowhere"}, "/jurisdiction"),
        ({"url": GOOD["url"]}, "/jurisdiction"),
    ],
)
async def test_bad_bodies_are_422_problems_and_nothing_is_written(
    client: Any, admin_token: str, db_dsn: str, body: dict[str, Any], loc: str
) -> None:
    await build_tree(client, admin_token, db_dsn)
    r = await client.post("/v1/webhooks", json=body, headers=bearer(admin_token))
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    assert loc in [e["loc"] for e in (await r.json())["errors"]]
    assert await _counts(db_dsn) == (0, 0)


async def test_bad_patch_and_unknown_delivery_change_nothing(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await build_tree(client, admin_token, db_dsn)
    h = bearer(admin_token)
    ep = await register(client, admin_token, **GOOD)
    url = f"/v1/webhooks/{ep['id']}"
    for body in ({"url": None}, {"url": "mailto:x@y"}, {"jurisdiction": "b"}, {"enabled": "no"}):
        r = await client.patch(url, json=body, headers=h)
        assert r.status == 422, (body, await r.text())
    r = await client.get(url, headers=h)
    assert (await r.json())["version"] == 1
    for did in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        r = await client.post(f"{url}/deliveries/{did}/replay", headers=h)
        assert r.status == 404
    r = await client.get(f"{url}/deliveries", params={"status": "lost"}, headers=h)
    assert r.status == 422


def test_an_endpoint_gets_messages_of_its_subtree_and_kinds() -> None:
    assert dom.receives("/c/a", None, "/c/a/a-1", "offer")
    assert dom.receives("/c/a", None, "/c/a", "released")
    assert not dom.receives("/c/a", None, "/c/ab", "offer"), "a sibling with a common prefix"
    assert not dom.receives("/c/a", None, "/c/b/b-1", "offer")
    assert not dom.receives("/c", ["offer"], "/c/a", "released")


def test_backoff_windows_grow_and_the_last_attempt_dead_letters() -> None:
    from datetime import UTC, datetime

    policy = dom.Backoff(base_s=5, cap_s=60, max_attempts=6)
    rng = random.Random(42)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    waits = [policy.delay(k, rng).total_seconds() for k in range(1, 6)]
    for k, w in enumerate(waits, start=1):
        d = min(60, 5 * 2 ** (k - 1))
        assert d / 2 <= w <= d
    assert waits == sorted(waits)
    assert policy.next_attempt(6, now, rng) is None
    assert policy.next_attempt(5, now, rng) is not None
    with pytest.raises(ValueError):
        dom.Backoff(base_s=0)
