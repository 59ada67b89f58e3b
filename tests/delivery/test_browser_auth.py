"""Browser clients cannot set headers on EventSource or WebSocket: the stream routes (and only
they) take the token as ``?access_token=``, and the token never reaches the app's logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import WSMsgType

from dispatch.clock import ManualClock
from tests.delivery.conftest import WAIT_S, make_world, open_sse
from tests.delivery.test_streams import send_offers


async def test_streams_accept_the_token_in_the_query_string_for_browsers(
    eng_client: Any, admin_token: str, db_dsn: str, clock: ManualClock
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    [first, second] = await send_offers(eng_client, clock, "v-ann", 2)
    token = w.tokens["v-ann"]

    ws = await eng_client.ws_connect("/v1/me/ws", params={"access_token": token, "since": "0"})
    msgs = [await ws.receive(timeout=WAIT_S) for _ in range(2)]
    assert [m.type for m in msgs] == [WSMsgType.TEXT, WSMsgType.TEXT]
    assert [json.loads(m.data)["seq"] for m in msgs] == [first, second]
    await ws.close()

    sse = await open_sse(eng_client, {}, access_token=token, since=str(first))
    assert int((await sse.message()).id or 0) == second
    sse.close()

    coord = await open_sse(eng_client, {}, "/v1/stream", access_token=w.coord)
    await coord.next()  # a heartbeat: the stream is open
    coord.close()

    # A header, when sent, wins: here it names v-bob, who has no messages.
    sse = await open_sse(eng_client, w.h("v-bob"), access_token=token)
    await sse.nothing_more()
    sse.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/me"),
        ("GET", "/v1/me/messages"),
        ("GET", "/v1/assignments"),
        ("POST", "/v1/me/check-in"),
    ],
)
async def test_other_routes_ignore_a_query_string_token(
    eng_client: Any, admin_token: str, db_dsn: str, method: str, path: str
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    r = await eng_client.request(method, path, params={"access_token": w.tokens["v-ann"]})
    assert r.status == 401
    assert "Authorization" in (await r.json())["detail"]


async def test_a_wrong_or_missing_query_token_is_refused(
    eng_client: Any, admin_token: str, db_dsn: str
) -> None:
    await make_world(eng_client, admin_token, db_dsn)
    for params in ({"access_token": "mst_nope"}, {"access_token": ""}, {}):
        for path in ("/v1/me/stream", "/v1/me/ws", "/v1/stream"):
            r = await eng_client.get(path, params=params)
            assert r.status == 401, (path, params)
            assert r.headers["Content-Type"].startswith("application/problem+json")
            assert "mst_nope" not in await r.text()


async def test_query_string_tokens_stay_out_of_the_logs(
    eng_client: Any,
    admin_token: str,
    db_dsn: str,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = await make_world(eng_client, admin_token, db_dsn)
    await send_offers(eng_client, clock, "v-ann", 1)
    token = w.tokens["v-ann"]
    caplog.set_level(logging.DEBUG)
    ws = await eng_client.ws_connect("/v1/me/ws", params={"access_token": token})
    await ws.receive(timeout=WAIT_S)
    await ws.close()
    sse = await open_sse(eng_client, {}, access_token=token)
    await sse.message()
    sse.close()
    r = await eng_client.get("/v1/me/stream", params={"access_token": token, "since": "x"})
    assert r.status == 422  # a validation problem, which must not echo the token either
    assert token not in await r.text()

    access = [rec for rec in caplog.records if rec.name == "aiohttp.access"]
    assert any("access_token=[redacted]" in rec.getMessage() for rec in access), (
        "the access log did not record the stream requests; the check below would prove nothing"
    )
    for rec in caplog.records:
        assert token not in rec.getMessage(), rec.name
        assert token not in repr(rec.__dict__), rec.name
