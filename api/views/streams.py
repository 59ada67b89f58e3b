"""Streams: ``/v1/me/stream`` (SSE), ``/v1/me/ws`` (WebSocket) and ``/v1/stream`` (coordinator
SSE). The protocol is documented in :mod:`api.streams`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ConfigDict, Field

from api.http import principal
from api.keys import CLOCK, POOL, STREAMS
from api.spec import Api, query_params
from api.streams import StreamHub
from dispatch import delivery
from dispatch.access import Action
from dispatch.storage import me as me_store
from dispatch.validation import Strict

log = logging.getLogger("muster.streams")

api = Api()
TAG = "streams"

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


#: ``?access_token=`` (read by the auth middleware): browsers cannot set headers on
#: ``EventSource`` or ``WebSocket``. It ends up in the logs of proxies on the way; the app
#: keeps it out of its own.
ACCESS_TOKEN = Field(
    default=None,
    max_length=200,
    description="the bearer token, for browser clients that cannot send an Authorization header",
)


class ResumeQuery(Strict):
    """Where to resume (``Last-Event-ID`` header wins over ``since``)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    since: str | None = Field(default=None, max_length=20, description="resume after this seq")
    access_token: str | None = ACCESS_TOKEN


class NoQuery(Strict):
    """No parameters but the browser's token."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    access_token: str | None = ACCESS_TOKEN


def _hub(request: web.Request) -> StreamHub:
    """The app's stream hub; 503 once it is shutting down (no new stream then)."""
    hub: StreamHub = request.app[STREAMS]
    if hub.closing.is_set():
        raise web.HTTPServiceUnavailable(reason="shutting down")
    return hub


def _start(request: web.Request) -> tuple[str, int]:
    """Authorise a volunteer stream and find where it starts (before anything is sent)."""
    person = me_store.person_of(principal(request))
    q = query_params(request, ResumeQuery)
    return person, delivery.resume_position(request.headers.get("Last-Event-ID"), q.since)


async def _open_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await resp.prepare(request)
    await resp.write(delivery.sse_retry())
    return resp


@api.endpoint(
    "GET",
    "/v1/me/stream",
    summary="Own messages as Server-Sent Events (resume with Last-Event-ID or ?since=)",
    tag=TAG,
    query=ResumeQuery,
    roles=("volunteer (own)",),
)
async def me_stream(request: web.Request) -> web.StreamResponse:
    person, since = _start(request)
    hub = _hub(request)
    recipient = hub.connect(person)
    try:
        resp = await _open_sse(request)

        async def send(env: dict[str, Any]) -> None:
            await resp.write(delivery.sse_message(env))

        async def ping() -> None:
            await resp.write(delivery.sse_comment("ping"))

        with contextlib.suppress(ConnectionError):
            await hub.pump(recipient, since, send, ping)
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp
    finally:
        hub.disconnect(recipient)


@api.endpoint(
    "GET",
    "/v1/me/ws",
    summary="Own messages over a WebSocket (resume with ?since=; client may send {ack: seq})",
    tag=TAG,
    query=ResumeQuery,
    roles=("volunteer (own)",),
)
async def me_ws(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    person, since = _start(request)
    hub = _hub(request)
    ws = web.WebSocketResponse(heartbeat=hub.heartbeat_s)
    await ws.prepare(request)
    hub.track(ws)
    recipient = hub.connect(person)

    async def send(env: dict[str, Any]) -> None:
        await ws.send_str(delivery.to_text(env))

    async def pump() -> None:
        with contextlib.suppress(ConnectionError):
            await hub.pump(recipient, since, send)

    sender = asyncio.create_task(pump(), name=f"ws-pump-{person}")
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _client_message(request, who, ws, msg.data)
            elif msg.type is WSMsgType.BINARY:
                await _error(ws, "binary frames are not understood; send JSON text")
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        hub.disconnect(recipient)
        hub.untrack(ws)
    return ws


async def _error(ws: web.WebSocketResponse, text: str) -> None:
    with contextlib.suppress(ConnectionError):
        await ws.send_str(delivery.to_text({"error": text}))


async def _client_message(
    request: web.Request, who: Any, ws: web.WebSocketResponse, data: str
) -> None:
    try:
        ack = delivery.parse_client_message(data)
    except ValueError as exc:
        await _error(ws, str(exc))
        return
    async with request.app[POOL].acquire() as con:
        await me_store.ack(con, who, ack.seq, request.app[CLOCK].now())


@api.endpoint(
    "GET",
    "/v1/stream",
    summary="Changes in scope (incidents, plans, answers) as Server-Sent Events; no resume",
    tag=TAG,
    query=NoQuery,
    roles=("admin", "coordinator", "observer"),
)
async def coordinator_stream(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    who.require("event_stream", Action.READ)
    query_params(request, NoQuery)
    hub = _hub(request)
    watcher = hub.watch(who)
    try:
        resp = await _open_sse(request)
        with contextlib.suppress(ConnectionError):
            while not hub.closing.is_set():
                if watcher.overflowed and watcher.queue.empty():
                    await resp.write(delivery.sse_event("{}", event="overflow"))
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), hub.heartbeat_s)
                except TimeoutError:
                    await resp.write(delivery.sse_comment("ping"))
                    continue
                if item is None:
                    break
                await resp.write(delivery.sse_event(delivery.to_text(item), event=item["kind"]))
            await resp.write_eof()
        return resp
    finally:
        hub.unwatch(watcher)
