"""``/v1/items`` and ``/v1/depots``: the supply catalogue, depots and their stock."""

from __future__ import annotations

from aiohttp import web

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, if_match, json_response, page, principal, read_json
from api.keys import POOL
from api.spec import Api, query_params
from dispatch import supplies as dom
from dispatch.access import Action
from dispatch.storage import supplies as store
from dispatch.validation import Code, Slug

api = Api()
READERS = ("admin", "coordinator", "observer")
WRITERS = ("admin", "coordinator")


# ---- items -------------------------------------------------------------------------------------


@api.endpoint(
    "GET",
    "/v1/items",
    summary="List the item catalogue",
    tag="supplies",
    query=ListQuery,
    roles=("admin", "coordinator", "trainer", "observer"),
)
async def list_items(request: web.Request) -> web.Response:
    q = query_params(request, ListQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_items(
            con, principal(request), cursor=decode_cursor(q.cursor, str), limit=q.limit + 1
        )
    return json_response(page(rows, q.limit, "code"))


@api.endpoint(
    "POST",
    "/v1/items",
    summary="Add an item to the catalogue",
    tag="supplies",
    body=dom.ItemCreate,
    status=201,
    roles=("admin",),
)
async def create_item(request: web.Request) -> web.Response:
    principal(request).require("item", Action.WRITE)
    body = await read_json(request, dom.ItemCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.create_item(con, principal(request), audit_ctx(request), body)
    return json_response(out, status=201, headers={"Location": f"/v1/items/{out['code']}"})


@api.endpoint(
    "GET",
    "/v1/items/{code}",
    summary="One catalogue item",
    tag="supplies",
    roles=("admin", "coordinator", "trainer", "observer"),
)
async def get_item(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get_item(con, principal(request), request.match_info["code"])
    return json_response(out)


# ---- depots ------------------------------------------------------------------------------------


class DepotQuery(ListQuery):
    """Filters for listing depots: a jurisdiction subtree, and/or holding an item."""

    jurisdiction: Code | None = None
    item: Slug | None = None


@api.endpoint(
    "GET",
    "/v1/depots",
    summary="List depots in scope, with their stock",
    tag="supplies",
    query=DepotQuery,
    roles=READERS,
)
async def list_depots(request: web.Request) -> web.Response:
    q = query_params(request, DepotQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_depots(
            con,
            principal(request),
            jurisdiction=q.jurisdiction,
            item=q.item,
            cursor=decode_cursor(q.cursor, str),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "POST",
    "/v1/depots",
    summary="Create a depot (with opening stock)",
    tag="supplies",
    body=dom.DepotCreate,
    status=201,
    roles=WRITERS,
    responses={403: "Jurisdiction outside the token's scope", 409: "Depot id already exists"},
)
async def create_depot(request: web.Request) -> web.Response:
    principal(request).require("depot", Action.WRITE)
    body = await read_json(request, dom.DepotCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.create_depot(con, principal(request), audit_ctx(request), body)
    return json_response(
        out,
        status=201,
        etag_version=out["version"],
        headers={"Location": f"/v1/depots/{out['id']}"},
    )


@api.endpoint(
    "GET", "/v1/depots/{id}", summary="One depot with its stock", tag="supplies", roles=READERS
)
async def get_depot(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get_depot(con, principal(request), request.match_info["id"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PATCH",
    "/v1/depots/{id}",
    summary="Rename, move, relocate or (de)activate a depot",
    tag="supplies",
    body=dom.DepotPatch,
    roles=WRITERS,
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def patch_depot(request: web.Request) -> web.Response:
    principal(request).require("depot", Action.WRITE)
    body = await read_json(request, dom.DepotPatch)
    async with request.app[POOL].acquire() as con:
        out = await store.update_depot(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body,
            if_match(request),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "DELETE",
    "/v1/depots/{id}",
    summary="Delete a depot that holds no stock",
    tag="supplies",
    status=204,
    roles=WRITERS,
    responses={409: "The depot still holds stock", 412: "If-Match does not match"},
)
async def delete_depot(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        await store.delete_depot(
            con, principal(request), audit_ctx(request), request.match_info["id"], if_match(request)
        )
    return web.Response(status=204)


# ---- stock -------------------------------------------------------------------------------------


@api.endpoint(
    "GET",
    "/v1/depots/{id}/stock/{item}",
    summary="One stock line (ETag is the line's version)",
    tag="supplies",
    roles=READERS,
)
async def get_stock(request: web.Request) -> web.Response:
    m = request.match_info
    async with request.app[POOL].acquire() as con:
        out = await store.get_stock(con, principal(request), m["id"], m["item"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PUT",
    "/v1/depots/{id}/stock/{item}",
    summary="Set the counted quantity of one item",
    tag="supplies",
    body=dom.StockSet,
    roles=WRITERS,
    responses={
        409: "Below reserved, or stale version in body",
        412: "If-Match does not match the line's version",
    },
)
async def set_stock(request: web.Request) -> web.Response:
    principal(request).require("depot", Action.WRITE)
    body = await read_json(request, dom.StockSet)
    m = request.match_info
    async with request.app[POOL].acquire() as con:
        out = await store.set_stock(
            con, principal(request), audit_ctx(request), m["id"], m["item"], body, if_match(request)
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "POST",
    "/v1/depots/{id}/stock:adjust",
    summary="Add to or take from one item's stock",
    tag="supplies",
    body=dom.StockAdjust,
    roles=WRITERS,
    responses={409: "The result would be negative or below reserved"},
)
async def adjust_stock(request: web.Request) -> web.Response:
    principal(request).require("depot", Action.WRITE)
    body = await read_json(request, dom.StockAdjust)
    async with request.app[POOL].acquire() as con:
        out = await store.adjust_stock(
            con, principal(request), audit_ctx(request), request.match_info["id"], body
        )
    return json_response(out, etag_version=out["version"])
