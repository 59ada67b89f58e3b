"""``/v1/allocations`` (supplies on their way) and ``/v1/stand-downs`` (aftermath records)."""

from __future__ import annotations

from aiohttp import web

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, json_response, page, principal, read_json
from api.keys import CLOCK, POOL
from api.spec import Api, query_params
from dispatch.access import Action
from dispatch.errors import NotFound
from dispatch.storage import allocations as store
from dispatch.storage import demobilisation
from dispatch.validation import Id

api = Api()


class AllocationQuery(ListQuery):
    """Filters for allocations."""

    incident: Id | None = None
    depot: Id | None = None


@api.endpoint(
    "GET",
    "/v1/allocations",
    summary="Supply allocations in scope",
    tag="supplies",
    query=AllocationQuery,
    roles=("admin", "coordinator", "observer"),
)
async def list_allocations(request: web.Request) -> web.Response:
    q = query_params(request, AllocationQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            incident=q.incident,
            depot=q.depot,
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "POST",
    "/v1/allocations/{id}/status",
    summary="Mark an allocation dispatched, delivered, returned or cancelled",
    tag="supplies",
    body=store.AllocationMove,
    roles=("admin", "coordinator"),
)
async def move_allocation(request: web.Request) -> web.Response:
    body = await read_json(request, store.AllocationMove)
    async with request.app[POOL].acquire() as con:
        out = await store.move(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            store.AllocationStatus(body.status),
            request.app[CLOCK].now(),
        )
    return json_response(out)


@api.endpoint(
    "GET",
    "/v1/stand-downs",
    summary="Stand-down summaries, newest first",
    tag="modes",
    query=ListQuery,
    roles=("admin", "coordinator", "observer", "trainer"),
)
async def list_stand_downs(request: web.Request) -> web.Response:
    q = query_params(request, ListQuery)
    who = principal(request)
    who.require("mode", Action.READ)
    before = decode_cursor(q.cursor)
    async with request.app[POOL].acquire() as con:
        rows = await demobilisation.list_rows(
            con, who, int(before) if before is not None else None, q.limit + 1
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "GET",
    "/v1/stand-downs/{id}",
    summary="One stand-down: releases, hours, returns",
    tag="modes",
    roles=("admin", "coordinator", "observer", "trainer"),
)
async def get_stand_down(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("mode", Action.READ)
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise NotFound(f"no stand-down {raw!r}")
    async with request.app[POOL].acquire() as con:
        out = await demobilisation.get(con, who, int(raw))
    return json_response(out)
