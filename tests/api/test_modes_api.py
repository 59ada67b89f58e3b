"""Modes through the real HTTP API: inheritance, history, audit, scope, validation, policies."""

from __future__ import annotations

import asyncio
import random
from itertools import pairwise
from typing import Any

from dispatch.access import Principal, Role
from dispatch.audit import AuditContext
from dispatch.modes import DEFAULT_POLICIES, MODE_KEYS, ModeChange, TransitionKind
from dispatch.storage import modes as mode_store
from tests.conftest import bearer, create_jurisdictions, make_token

TREE = [
    {"code": "sh", "kind": "city", "name": "City"},
    {"code": "pa", "parent": "sh", "kind": "district", "name": "District A"},
    {"code": "pb", "parent": "sh", "kind": "district", "name": "District B"},
    {"code": "pa-1", "parent": "pa", "kind": "street", "name": "Street A1"},
    {"code": "pb-1", "parent": "pb", "kind": "street", "name": "Street B1"},
]


async def create_tree(client: Any, token: str) -> None:
    await create_jurisdictions(client, token, TREE)


async def put_mode(client: Any, token: str, code: str, body: dict[str, Any], **headers: str) -> Any:
    return await client.put(
        f"/v1/jurisdictions/{code}/mode", json=body, headers=bearer(token) | headers
    )


def emergency(level: str, reason: str = "flood warning") -> dict[str, Any]:
    return {"mode": "emergency", "level": level, "reason": reason}


def routine(reason: str = "all clear") -> dict[str, Any]:
    return {"mode": "routine", "reason": reason}


async def effective(client: Any, token: str, code: str) -> tuple[str | None, str]:
    r = await client.get(f"/v1/jurisdictions/{code}/mode", headers=bearer(token))
    assert r.status == 200, await r.text()
    eff = (await r.json())["effective"]
    return eff["level"] or eff["mode"], eff["source"]


async def test_district_emergency_reaches_its_street_but_not_the_other_district(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    r = await put_mode(client, admin_token, "pa", emergency("II"))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["own"]["mode"] == "emergency" and body["own"]["level"] == "II"
    assert body["effective"] == {"mode": "emergency", "level": "II", "source": "pa"}
    assert body["policy"]["key"] == "II" and r.headers["ETag"] == '"1"'

    r = await client.get("/v1/jurisdictions/pa-1/mode", headers=bearer(admin_token))
    street = await r.json()
    assert street["own"] is None
    assert street["effective"] == {"mode": "emergency", "level": "II", "source": "pa"}
    assert street["policy"]["offer_expiry_s"] == DEFAULT_POLICIES["II"].offer_expiry_s
    assert street["history"] == []
    assert await effective(client, admin_token, "pb") == ("routine", "pb")
    assert await effective(client, admin_token, "pb-1") == ("routine", "pb-1")


async def test_city_level_one_overrides_and_stand_downs_restore_the_district_level(
    client: Any, admin_token: str
) -> None:
    await create_tree(client, admin_token)
    assert (await put_mode(client, admin_token, "pa", emergency("II"))).status == 200
    assert (await put_mode(client, admin_token, "pa-1", emergency("IV"))).status == 200
    assert (await put_mode(client, admin_token, "sh", emergency("I", "storm"))).status == 200
    for code in ("sh", "pa", "pa-1", "pb", "pb-1"):
        assert await effective(client, admin_token, code) == ("I", "sh")

    assert (await put_mode(client, admin_token, "sh", routine())).status == 200
    assert await effective(client, admin_token, "pa-1") == ("II", "pa")
    assert await effective(client, admin_token, "pb-1") == ("routine", "pb-1")

    assert (await put_mode(client, admin_token, "pa", routine())).status == 200
    assert await effective(client, admin_token, "pa-1") == ("IV", "pa-1")
    assert (await put_mode(client, admin_token, "pa-1", routine())).status == 200
    r = await client.get("/v1/jurisdictions/pa-1/mode", headers=bearer(admin_token))
    body = await r.json()
    assert body["effective"] == {"mode": "routine", "level": None, "source": "pa-1"}
    assert body["own"]["mode"] == "routine" and body["own"]["version"] == 2
    assert body["policy"]["key"] == "routine"


async def test_history_is_newest_first_with_reasons_and_actors_and_every_change_is_audited(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    coord = await make_token(db_dsn, "coordinator", "pa")
    assert (await put_mode(client, admin_token, "pa", emergency("III", "rain"))).status == 200
    assert (await put_mode(client, coord, "pa", emergency("II", "levee breach"))).status == 200
    assert (await put_mode(client, coord, "pa", routine("water receded"))).status == 200

    r = await client.get("/v1/jurisdictions/pa/mode", headers=bearer(coord))
    history = (await r.json())["history"]
    assert [h["reason"] for h in history] == ["water receded", "levee breach", "rain"]
    assert [h["actor_role"] for h in history] == ["coordinator", "coordinator", "admin"]
    assert history[0]["actor"] == history[1]["actor"] != history[2]["actor"]
    assert all(h["actor"].startswith("token:") for h in history)
    assert [(h["from"], h["to"]) for h in history] == [
        ({"mode": "emergency", "level": "II"}, {"mode": "routine", "level": None}),
        ({"mode": "emergency", "level": "III"}, {"mode": "emergency", "level": "II"}),
        (None, {"mode": "emergency", "level": "III"}),
    ]
    r = await client.get(
        "/v1/jurisdictions/pa/mode", params={"history": "1"}, headers=bearer(coord)
    )
    assert [h["reason"] for h in (await r.json())["history"]] == ["water receded"]

    async with pool.acquire() as con:
        rows = await con.fetch(
            "SELECT actor, actor_role, action, before, after FROM audit_log"
            " WHERE object_type = 'jurisdiction_mode' AND object_id = 'pa' ORDER BY seq"
        )
    assert [r["after"]["reason"] for r in rows] == ["rain", "levee breach", "water receded"]
    assert [r["actor_role"] for r in rows] == ["admin", "coordinator", "coordinator"]
    assert {r["action"] for r in rows} == {"set_mode"}
    assert rows[0]["before"] is None and rows[2]["before"]["level"] == "II"
    assert [r["actor"] for r in rows] == [h["actor"] for h in reversed(history)]


async def test_coordinator_of_b_can_neither_change_nor_see_a(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    coord_b = await make_token(db_dsn, "coordinator", "pb")
    r = await put_mode(client, coord_b, "pa", emergency("II"))
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await put_mode(client, coord_b, "sh", emergency("II"))  # an ancestor is out of scope too
    assert r.status == 404
    r = await client.get("/v1/jurisdictions/pa/mode", headers=bearer(coord_b))
    assert r.status == 404
    assert (await put_mode(client, coord_b, "pb-1", emergency("III"))).status == 200
    async with pool.acquire() as con:
        assert await con.fetchval("SELECT array_agg(code) FROM jurisdiction_modes") == ["pb-1"]


async def test_observers_and_trainers_read_in_scope_but_cannot_change(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    assert (await put_mode(client, admin_token, "pa", emergency("III"))).status == 200
    observer = await make_token(db_dsn, "observer", "pa")
    trainer = await make_token(db_dsn, "trainer", "sh")
    r = await put_mode(client, observer, "pa", routine())
    assert r.status == 403 and r.content_type == "application/problem+json"
    r = await put_mode(client, trainer, "pa", routine())
    assert r.status == 403
    assert await effective(client, observer, "pa-1") == ("III", "pa")
    assert await effective(client, trainer, "pb") == ("routine", "pb")
    r = await client.get("/v1/jurisdictions/pb/mode", headers=bearer(observer))
    assert r.status == 404
    async with pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM mode_history") == 1


async def test_bad_bodies_are_refused_and_nothing_is_written(
    client: Any, admin_token: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    cases: list[tuple[bytes, int, str | None]] = [
        (b'{"mode": "emergency", "reason": "x"}', 422, "/level"),
        (b'{"mode": "routine", "level": "II", "reason": "x"}', 422, "/level"),
        (b'{"mode": "emergency", "level": "V", "reason": "x"}', 422, "/level"),
        (b'{"mode": "emergency", "level": "II"}', 422, "/reason"),
        (b'{"mode": "emergency", "level": "II", "reason": ""}', 422, "/reason"),
        (b'{"mode": "emergency", "level": 2, "reason": "x"}', 422, "/level"),
        (b'{"mode": "routine", "reason": "x", "urgent": true}', 422, "/urgent"),
        (b'{"mode": "alert", "reason": "x"}', 422, "/mode"),
        (b"[]", 422, None),
        (b"{not json", 422, None),
    ]
    h = bearer(admin_token) | {"Content-Type": "application/json"}
    for raw, status, loc in cases:
        r = await client.put("/v1/jurisdictions/pa/mode", data=raw, headers=h)
        assert r.status == status, (raw, await r.text())
        assert r.content_type == "application/problem+json"
        if loc:
            assert loc in [e["loc"] for e in (await r.json())["errors"]], raw
    r = await put_mode(client, admin_token, "nowhere", emergency("II"))
    assert r.status == 404
    r = await client.put(
        "/v1/jurisdictions/pa/mode", data=b"mode=routine", headers=bearer(admin_token)
    )
    assert r.status == 415
    async with pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM jurisdiction_modes") == 0
        assert await con.fetchval("SELECT count(*) FROM mode_history") == 0
        assert (
            await con.fetchval(
                "SELECT count(*) FROM audit_log WHERE object_type = 'jurisdiction_mode'"
            )
            == 0
        )


async def test_stale_versions_and_if_match_are_refused(client: Any, admin_token: str) -> None:
    await create_tree(client, admin_token)
    r = await put_mode(client, admin_token, "pa", emergency("IV") | {"version": 0})
    assert r.status == 200 and r.headers["ETag"] == '"1"'
    r = await put_mode(client, admin_token, "pa", emergency("I") | {"version": 0})
    assert r.status == 409
    assert (await r.json())["current_version"] == 1
    r = await put_mode(client, admin_token, "pa", emergency("I"), **{"If-Match": '"7"'})
    assert r.status == 412
    r = await put_mode(client, admin_token, "pa", emergency("III"), **{"If-Match": '"1"'})
    assert r.status == 200 and r.headers["ETag"] == '"2"'
    assert await effective(client, admin_token, "pa") == ("III", "pa")


async def test_emergency_listing_shows_own_settings_in_scope_page_by_page(
    client: Any, admin_token: str, db_dsn: str
) -> None:
    await create_tree(client, admin_token)
    for code, level in (("pa", "II"), ("pa-1", "I"), ("pb-1", "IV")):
        assert (await put_mode(client, admin_token, code, emergency(level))).status == 200
    assert (await put_mode(client, admin_token, "pb", routine("checked"))).status == 200
    h = bearer(admin_token)
    r = await client.get("/v1/modes", params={"mode": "emergency"}, headers=h)
    items = (await r.json())["items"]
    assert [(i["code"], i["level"]) for i in items] == [("pa", "II"), ("pa-1", "I"), ("pb-1", "IV")]
    assert items[1]["path"] == "/sh/pa/pa-1" and items[1]["reason"] == "flood warning"
    r = await client.get("/v1/modes", headers=h)
    assert [i["code"] for i in (await r.json())["items"]] == ["pa", "pa-1", "pb", "pb-1"]
    r = await client.get("/v1/modes", params={"mode": "emergency", "level": "I"}, headers=h)
    assert [i["code"] for i in (await r.json())["items"]] == ["pa-1"]

    seen, cursor = [], None
    while True:
        params = {"mode": "emergency", "limit": "1"} | ({"cursor": cursor} if cursor else {})
        page = await (await client.get("/v1/modes", params=params, headers=h)).json()
        seen += [i["code"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ["pa", "pa-1", "pb-1"]

    coord_b = await make_token(db_dsn, "coordinator", "pb")
    r = await client.get("/v1/modes", params={"mode": "emergency"}, headers=bearer(coord_b))
    assert [i["code"] for i in (await r.json())["items"]] == ["pb-1"]
    r = await client.get("/v1/modes", params={"level": "V"}, headers=h)
    assert r.status == 422


async def test_stored_policies_are_the_shipped_defaults(client: Any, admin_token: str) -> None:
    r = await client.get("/v1/mode-policies", headers=bearer(admin_token))
    items = (await r.json())["items"]
    assert [p["key"] for p in items] == list(MODE_KEYS)
    for p in items:
        expected = DEFAULT_POLICIES[p["key"]].model_dump(mode="json")
        assert {k: p[k] for k in expected} == expected, p["key"]
        assert p["version"] == 1
    r = await client.get("/v1/mode-policies/III", headers=bearer(admin_token))
    assert (await r.json())["callable_pools"] == ["staff", "volunteers"]
    assert (await client.get("/v1/mode-policies/V", headers=bearer(admin_token))).status == 404


async def test_admin_policy_edit_changes_what_the_mode_endpoint_reports(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    assert (await put_mode(client, admin_token, "pa", emergency("II"))).status == 200
    new = DEFAULT_POLICIES["II"].model_dump(mode="json") | {
        "offer_expiry_s": 150,
        "callable_pools": ["staff", "volunteers", "reserves", "mutual_aid"],
        "mutual_aid": "siblings",
    }
    r = await client.put(
        "/v1/mode-policies/II", json=new | {"version": 1}, headers=bearer(admin_token)
    )
    assert r.status == 200, await r.text()
    assert r.headers["ETag"] == '"2"'
    r = await client.get("/v1/jurisdictions/pa-1/mode", headers=bearer(admin_token))
    policy = (await r.json())["policy"]
    assert policy["offer_expiry_s"] == 150 and policy["mutual_aid"] == "siblings"
    assert policy["version"] == 2
    async with pool.acquire() as con:
        engine_view = await mode_store.policy_for_jurisdiction(con, "pa-1")
        assert engine_view.offer_expiry_s == 150
        assert (await mode_store.policy_for_jurisdiction(con, "pb-1")).offer_expiry_s == 14400
        row = await con.fetchrow(
            "SELECT actor_role, before, after FROM audit_log"
            " WHERE object_type = 'mode_policy' AND object_id = 'II'"
        )
    assert row["actor_role"] == "admin"
    assert (row["before"]["offer_expiry_s"], row["after"]["offer_expiry_s"]) == (180, 150)

    r = await client.put(
        "/v1/mode-policies/II", json=new | {"version": 1}, headers=bearer(admin_token)
    )
    assert r.status == 409
    r = await client.put(
        "/v1/mode-policies/II", json=new, headers=bearer(admin_token) | {"If-Match": '"1"'}
    )
    assert r.status == 412
    r = await client.put(
        "/v1/mode-policies/II",
        json=new | {"mutual_aid": "none"},  # mutual_aid pool without a scope
        headers=bearer(admin_token),
    )
    assert r.status == 422
    r = await client.put("/v1/mode-policies/V", json=new, headers=bearer(admin_token))
    assert r.status == 404


async def test_only_unscoped_admins_may_edit_policies(
    client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    body = DEFAULT_POLICIES["IV"].model_dump(mode="json") | {"offer_expiry_s": 60}
    for role, scope in (("coordinator", "sh"), ("observer", "sh"), ("admin", "pa")):
        token = await make_token(db_dsn, role, scope)
        r = await client.put("/v1/mode-policies/IV", json=body, headers=bearer(token))
        assert r.status == 403, role
        r = await client.get("/v1/mode-policies/IV", headers=bearer(token))
        assert r.status == 200 and (await r.json())["offer_expiry_s"] == 600
    async with pool.acquire() as con:
        assert await con.fetchval("SELECT version FROM mode_policies WHERE key = 'IV'") == 1
        assert (
            await con.fetchval("SELECT count(*) FROM audit_log WHERE object_type = 'mode_policy'")
            == 0
        )


async def test_concurrent_changes_on_one_node_leave_history_consistent_with_the_final_state(
    client: Any, admin_token: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    rng = random.Random(4)
    bodies = [
        emergency(rng.choice(["IV", "III", "II", "I"]), f"change {n}")
        if rng.random() < 0.7
        else routine(f"change {n}")
        for n in range(24)
    ]
    answers = await asyncio.gather(*(put_mode(client, admin_token, "pa", b) for b in bodies))
    assert [a.status for a in answers] == [200] * len(bodies)

    r = await client.get(
        "/v1/jurisdictions/pa/mode", params={"history": "100"}, headers=bearer(admin_token)
    )
    state = await r.json()
    history = list(reversed(state["history"]))  # oldest first
    assert len(history) == len(bodies) == state["own"]["version"]
    assert history[0]["from"] is None
    for older, newer in pairwise(history):
        assert newer["from"] == older["to"]
    final = history[-1]
    assert final["to"] == {"mode": state["own"]["mode"], "level": state["own"]["level"]}
    assert final["reason"] == state["own"]["reason"]
    assert sorted(h["reason"] for h in history) == sorted(b["reason"] for b in bodies)
    async with pool.acquire() as con:
        audited = await con.fetch(
            "SELECT after FROM audit_log WHERE object_type = 'jurisdiction_mode' ORDER BY seq"
        )
    assert [a["after"]["reason"] for a in audited] == [h["reason"] for h in history]


async def test_engine_sees_effective_modes_and_the_nodes_each_change_moves(
    client: Any, admin_token: str, pool: Any
) -> None:
    await create_tree(client, admin_token)
    admin = Principal(token_id="engine-test", role=Role.ADMIN, scope_code=None, scope_path=None)
    ctx = AuditContext.system("test")

    def change(raw: dict[str, Any]) -> ModeChange:
        return ModeChange.model_validate(raw, strict=False)

    async with pool.acquire() as con:
        done = await mode_store.set_mode(con, admin, ctx, "sh", change(emergency("I")), None)
        assert {t.code for t in done.transitions} == {"sh", "pa", "pb", "pa-1", "pb-1"}
        assert {t.kind for t in done.transitions} == {TransitionKind.ESCALATED}
        done = await mode_store.set_mode(con, admin, ctx, "pa", change(emergency("II")), None)
        assert done.transitions == []  # the city's I still rules
        done = await mode_store.set_mode(con, admin, ctx, "sh", change(routine()), None)
        kinds = {t.code: t.kind for t in done.transitions}
        assert kinds == {
            "sh": TransitionKind.STOOD_DOWN,
            "pb": TransitionKind.STOOD_DOWN,
            "pb-1": TransitionKind.STOOD_DOWN,
            "pa": TransitionKind.DE_ESCALATED,
            "pa-1": TransitionKind.DE_ESCALATED,
        }
        eff = await mode_store.effective_modes(con, ["pa-1", "pb-1", "missing"])
        mode, source = eff["pa-1"]
        assert (mode.key, source) == ("II", "pa")
        assert (eff["pb-1"].mode.key, eff["pb-1"].source) == ("routine", "pb-1")
        assert "missing" not in eff
        assert (await mode_store.policy_for_jurisdiction(con, "pa-1")).suspend_routine_tasks


async def test_mode_endpoints_are_documented(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert {"get", "put"} <= set(spec["paths"]["/v1/jurisdictions/{code}/mode"])
    assert "ModeChange" in spec["components"]["schemas"]
    assert "put" in spec["paths"]["/v1/mode-policies/{key}"]
