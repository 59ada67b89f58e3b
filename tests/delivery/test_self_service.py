"""The volunteer self-service API: own record, assignments, messages, availability, check-in and
check-out, and answering offers safely (ownership, expiry, withdrawal, idempotent retries)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.keys import ENGINE
from dispatch.clock import ManualClock
from tests.delivery.conftest import World, emergency, make_world, open_sse


async def offers_of(w: World, pid: str, status: str = "offered") -> list[dict[str, Any]]:
    r = await w.client.get("/v1/me/assignments", params={"status": status}, headers=w.h(pid))
    assert r.status == 200, await r.text()
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def audit(pool: Any, object_type: str, object_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT action FROM audit_log WHERE object_type = $1 AND object_id = $2 ORDER BY id",
        object_type,
        object_id,
    )
    return [r["action"] for r in rows]


async def test_me_shows_own_record_with_contacts_and_the_active_assignment(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    r = await eng_client.get("/v1/me", headers=w.h("v-ann"))
    assert r.status == 200
    body = await r.json()
    assert body["person"]["id"] == "v-ann"
    assert body["person"]["contacts"]["phone"] == "+86 21 5555 0100"
    assert body["person"]["home"] == {"lat": 31.231, "lon": 121.469}
    assert body["active_assignment"] is None
    assert body["messages"] == {"last_seq": 0, "last_acked_seq": 0}
    assert r.headers["ETag"] == f'"{body["person"]["version"]}"'

    await w.incident("i-a")
    offer = await w.pin("i-a", "v-ann")
    body = await (await eng_client.get("/v1/me", headers=w.h("v-ann"))).json()
    assert body["active_assignment"]["id"] == offer["id"]
    assert body["active_assignment"]["incident_detail"]["title"] == "Incident i-a"
    assert body["messages"]["last_seq"] == 1
    # v-bob's view of himself shows nothing of v-ann's.
    bob = await (await eng_client.get("/v1/me", headers=w.h("v-bob"))).json()
    assert bob["person"]["id"] == "v-bob" and bob["active_assignment"] is None


async def test_self_service_is_for_volunteer_tokens_and_the_coordinator_stream_is_not(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    for who in ("coord", "admin"):
        for method, path in (
            ("GET", "/v1/me"),
            ("GET", "/v1/me/assignments"),
            ("GET", "/v1/me/messages"),
            ("GET", "/v1/me/stream"),
            ("GET", "/v1/me/ws"),
            ("POST", "/v1/me/check-in"),
            ("POST", "/v1/me/check-out"),
        ):
            r = await eng_client.request(method, path, headers=w.h(who))
            assert r.status == 403, (who, path, await r.text())
            assert r.headers["Content-Type"].startswith("application/problem+json")
        r = await eng_client.put(
            "/v1/me/availability", json={"status": "unavailable"}, headers=w.h(who)
        )
        assert r.status == 403
    r = await eng_client.get("/v1/stream", headers=w.h("v-ann"))
    assert r.status == 403
    r = await eng_client.get("/v1/me/stream")
    assert r.status == 401
    r = await eng_client.get("/v1/me/stream", headers={**w.h("v-ann"), "Last-Event-ID": "x"})
    assert r.status == 422


async def test_a_volunteer_cannot_read_or_answer_anothers_assignment(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    await w.incident("i-a")
    offer = await w.pin("i-a", "v-ann")
    attempts = [
        ("GET", "/v1/assignments/{}", None),
        ("POST", "/v1/assignments/{}/accept", None),
        ("POST", "/v1/assignments/{}/decline", {"reason": "no"}),
        ("POST", "/v1/assignments/{}/status", {"status": "en_route"}),
    ]
    for method, template, body in attempts:
        theirs = await eng_client.request(
            method, template.format(offer["id"]), json=body, headers=w.h("v-bob")
        )
        unknown = await eng_client.request(
            method, template.format("a-doesnotexist"), json=body, headers=w.h("v-bob")
        )
        assert theirs.status == unknown.status == 404, template
        a, b = await theirs.json(), await unknown.json()
        assert a["title"] == b["title"] and set(a) == set(b)  # same answer: no existence leak
    # Nothing changed, and v-bob's lists do not include it.
    r = await eng_client.get(f"/v1/assignments/{offer['id']}", headers=w.h("v-ann"))
    assert (await r.json())["status"] == "offered"
    r = await eng_client.get("/v1/assignments", params={"person": "v-ann"}, headers=w.h("v-bob"))
    assert (await r.json())["items"] == []
    assert await offers_of(w, "v-bob") == []
    # v-bob's stream does not carry v-ann's offer.
    sse = await open_sse(eng_client, w.h("v-bob"))
    await sse.nothing_more()
    sse.close()


async def test_answering_an_expired_or_withdrawn_offer_is_a_clear_conflict(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    await w.incident("i-a")
    await w.incident("i-b")
    expiring = await w.pin("i-a", "v-ann")
    clock.set(datetime.fromisoformat(expiring["offer_deadline"]) + timedelta(seconds=1))
    r = await eng_client.post(f"/v1/assignments/{expiring['id']}/accept", headers=w.h("v-ann"))
    assert r.status == 409
    body = await r.json()
    assert "expired" in body["detail"] and body["current_status"] == "expired"
    # After the engine processed the deadline the answer is the same.
    await eng_client.server.app[ENGINE].run_due()
    r = await eng_client.post(f"/v1/assignments/{expiring['id']}/decline", headers=w.h("v-ann"))
    assert r.status == 409 and (await r.json())["current_status"] == "expired"

    withdrawn = await w.pin("i-b", "v-bob")
    await w.cancel(withdrawn["id"])
    r = await eng_client.post(f"/v1/assignments/{withdrawn['id']}/accept", headers=w.h("v-bob"))
    assert r.status == 409
    body = await r.json()
    assert "withdrawn" in body["detail"] and body["current_status"] == "cancelled"


async def test_a_retried_accept_with_the_same_idempotency_key_is_applied_once(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    await w.incident("i-a")
    offer = await w.pin("i-a", "v-ann")
    headers = {**w.h("v-ann"), "Idempotency-Key": "accept-1"}
    first = await eng_client.post(f"/v1/assignments/{offer['id']}/accept", headers=headers)
    retry = await eng_client.post(f"/v1/assignments/{offer['id']}/accept", headers=headers)
    assert first.status == retry.status == 200
    assert await first.json() == await retry.json()
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert (await retry.json())["status"] == "accepted"
    assert (await audit(pool, "assignment", offer["id"])).count("accepted") == 1
    version = await pool.fetchval("SELECT version FROM assignments WHERE id = $1", offer["id"])
    assert version == offer["version"] + 1
    # Without the key a second accept is refused, not applied twice.
    again = await eng_client.post(f"/v1/assignments/{offer['id']}/accept", headers=w.h("v-ann"))
    assert again.status == 409


async def test_answers_are_audited_with_the_stored_row_before_and_after(
    eng_client: Any, admin_token: str, db_dsn: str, pool: Any, clock: ManualClock
) -> None:
    """Accept and decline write the assignment and its audit entry in one statement (the
    entry's ``after`` is computed in advance): it must equal what the API then shows."""
    w = await make_world(eng_client, admin_token, db_dsn)
    await w.incident("i-a")
    await w.incident("i-b")
    accepted = await w.pin("i-a", "v-ann")
    declined = await w.pin("i-b", "v-bob")
    clock.advance(timedelta(seconds=42, microseconds=7))
    shown = {}
    for offer, who, verb, body in (
        (accepted, "v-ann", "accept", None),
        (declined, "v-bob", "decline", {"reason": "flu"}),
    ):
        url = f"/v1/assignments/{offer['id']}"
        before = await (await eng_client.get(url, headers=w.h(who))).json()
        r = await eng_client.post(f"{url}/{verb}", json=body, headers=w.h(who))
        assert r.status == 200, await r.text()
        answer = await r.json()
        stored = await (await eng_client.get(url, headers=w.h(who))).json()
        assert answer == stored
        row = await pool.fetchrow(
            "SELECT actor, actor_role, action, before, after, request_id FROM audit_log"
            " WHERE object_type = 'assignment' AND object_id = $1 AND action = $2",
            offer["id"],
            stored["status"],
        )
        assert (row["before"], row["after"]) == (before, stored)
        assert row["actor_role"] == "volunteer" and row["request_id"] == r.headers["X-Request-Id"]
        shown[verb] = stored
    assert shown["accept"]["locked"] is True
    assert shown["accept"]["accepted_at"] == clock.now().isoformat()
    assert shown["decline"]["decline_reason"] == "flu"
    rule = await pool.fetchrow(
        "SELECT rule, created_at, created_by FROM pair_rules WHERE person_id = 'v-bob'"
        " AND incident_id = 'i-b'"
    )
    assert rule["rule"] == "declined" and rule["created_at"] == clock.now()
    # The audit chain stays intact.
    r = await eng_client.get("/v1/audit/verify", headers=w.h("admin"))
    assert r.status == 200 and (await r.json())["ok"] is True


async def test_my_assignments_filter_by_status_and_paginate(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    ids = []
    for iid in ("i-1", "i-2", "i-3"):
        await w.incident(iid)
        ids.append((await w.pin(iid, "v-ann"))["id"])
        if iid != "i-3":
            await w.cancel(ids[-1])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await eng_client.get("/v1/me/assignments", params=params, headers=w.h("v-ann"))
        assert r.status == 200
        page = await r.json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(ids)
    assert [a["id"] for a in await offers_of(w, "v-ann")] == [ids[2]]
    assert len(await offers_of(w, "v-ann", "cancelled")) == 2
    r = await eng_client.get("/v1/me/assignments?status=bogus", headers=w.h("v-ann"))
    assert r.status == 422


async def test_messages_replay_as_plain_json_pages(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    for iid in ("i-1", "i-2"):
        await w.incident(iid)
        offer = await w.pin(iid, "v-ann")
        await w.cancel(offer["id"])
    r = await eng_client.get("/v1/me/messages", params={"limit": "3"}, headers=w.h("v-ann"))
    page = await r.json()
    assert [m["seq"] for m in page["items"]] == [1, 2, 3] and page["next"] == 3
    r = await eng_client.get(
        "/v1/me/messages", params={"since": str(page["next"])}, headers=w.h("v-ann")
    )
    page = await r.json()
    assert [m["seq"] for m in page["items"]] == [4] and page["next"] is None
    assert page["items"][0]["kind"] == "assignment_cancelled"
    r = await eng_client.get("/v1/me/messages?since=-1", headers=w.h("v-ann"))
    assert r.status == 422


async def test_availability_is_validated(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    now = clock.now()
    bad = [
        ({"status": "available", "until": (now - timedelta(minutes=1)).isoformat()}, "/until"),
        ({"status": "available", "until": (now + timedelta(days=8)).isoformat()}, "/until"),
        ({"status": "available"}, "/until"),
        ({"status": "available", "until": "2026-07-14T18:00:00"}, "/until"),
        ({"status": "busy", "until": None}, "/status"),
        ({"status": "unavailable", "extra": 1}, "/extra"),
    ]
    for body, loc in bad:
        r = await eng_client.put("/v1/me/availability", json=body, headers=w.h("v-ann"))
        assert r.status == 422, (body, await r.text())
        assert loc in [e["loc"] for e in (await r.json())["errors"]], body
    r = await eng_client.get("/v1/me", headers=w.h("v-ann"))
    assert (await r.json())["person"]["version"] == 1  # nothing was written


async def test_availability_and_check_in_out_change_who_the_engine_calls(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock, pool: Any
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    engine = eng_client.server.app[ENGINE]
    await emergency(w)
    sse = await open_sse(eng_client, w.h("v-ann"))

    # Both volunteers of street A1 say they are unavailable; nobody can be offered.
    until = clock.now() + timedelta(hours=6)
    r = await eng_client.put(
        "/v1/me/availability",
        json={"status": "unavailable", "until": until.isoformat()},
        headers=w.h("v-ann"),
    )
    assert r.status == 200, await r.text()
    ann = await r.json()
    assert ann["version"] == 2 and r.headers["ETag"] == '"2"'
    assert ann["availability"]["exceptions"] == [
        {"start": _z(clock.now()), "end": _z(until), "available": False}
    ]
    r = await eng_client.put(
        "/v1/me/availability", json={"status": "unavailable", "until": None}, headers=w.h("v-bob")
    )
    assert r.status == 200
    await w.incident("i-a")
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert report.plan_id is not None and report.offers == 0
    assert await offers_of(w, "v-ann") == [] and await offers_of(w, "v-bob") == []

    # v-ann checks in: on duty now, so the re-plan it asked for offers her the slot.
    r = await eng_client.post("/v1/me/check-in", headers=w.h("v-ann"))
    assert r.status == 200
    checked_in_at = clock.now()
    checked_in = await r.json()
    assert checked_in["version"] == 3
    # The earlier "unavailable" keeps only the two seconds before the check-in.
    assert checked_in["availability"]["exceptions"] == [
        {
            "start": _z(clock.now() - timedelta(seconds=2)),
            "end": _z(clock.now()),
            "available": False,
        },
        {"start": _z(clock.now()), "end": _z(clock.now() + timedelta(hours=12)), "available": True},
    ]
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert report.offers == 1
    [offer] = await offers_of(w, "v-ann")
    ev = await sse.message()
    assert ev.event == "offer" and ev.json()["payload"]["assignment"] == offer["id"]
    sse.close()

    # Committed: checking out (or going unavailable) is refused until she reports done.
    r = await eng_client.post(f"/v1/assignments/{offer['id']}/accept", headers=w.h("v-ann"))
    assert r.status == 200
    r = await eng_client.post("/v1/me/check-out", headers=w.h("v-ann"))
    assert r.status == 409
    assert "report done" in (await r.json())["detail"]
    r = await eng_client.post(
        f"/v1/assignments/{offer['id']}/status", json={"status": "done"}, headers=w.h("v-ann")
    )
    assert r.status == 200
    r = await eng_client.post("/v1/me/check-out", headers=w.h("v-ann"))
    assert r.status == 200
    out = await r.json()
    off = [e for e in out["availability"]["exceptions"] if e["start"] == _z(clock.now())]
    assert [e["available"] for e in off] == [False]
    assert off[0]["end"] == _z(checked_in_at + timedelta(hours=12))  # the rest of the shift

    # A new incident: v-ann is off duty again, so nobody is offered.
    await w.incident("i-b")
    clock.advance(timedelta(seconds=2))
    report = await engine.run_due()
    assert report.offers == 0

    # Every change is audited on the person, in order, by the volunteer's own token.
    rows = await pool.fetch(
        "SELECT action, actor_role, before, after FROM audit_log"
        " WHERE object_type = 'person' AND object_id = 'v-ann' ORDER BY id"
    )
    assert [r["action"] for r in rows] == ["availability", "check_in", "check_out"]
    assert {r["actor_role"] for r in rows} == {"volunteer"}
    assert [(r["before"]["version"], r["after"]["version"]) for r in rows] == [
        (1, 2),
        (2, 3),
        (3, 4),
    ]


def _z(value: Any) -> str:
    return str(value.isoformat()).replace("+00:00", "Z")
