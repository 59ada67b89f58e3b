"""``/v1/jurisdictions``: the hierarchy."""

from __future__ import annotations

from aiohttp import web

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, if_match, json_response, page, principal, read_json
from api.keys import POOL
from api.spec import Api, query_params
from dispatch import jurisdictions as dom
from dispatch.storage import jurisdictions as store
from dispatch.validation import Code

api = Api()
TAG = "jurisdictions"


class JurisdictionQuery(ListQuery):
    """Filters for listing jurisdictions."""

    parent: Code | None = None
    kind: dom.JurisdictionKind | None = None
    under: Code | None = None


@api.endpoint(
    "GET",
    "/v1/jurisdictions",
    summary="List jurisdictions in scope",
    tag=TAG,
    query=JurisdictionQuery,
    roles=("admin", "coordinator", "trainer", "observer"),
)
async def list_jurisdictions(request: web.Request) -> web.Response:
    q = query_params(request, JurisdictionQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            parent=q.parent,
            kind=q.kind.value if q.kind else None,
            under=q.under,
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "code"))


@api.endpoint(
    "POST",
    "/v1/jurisdictions",
    summary="Create a jurisdiction",
    tag=TAG,
    body=dom.JurisdictionCreate,
    status=201,
    roles=("admin",),
)
async def create_jurisdiction(request: web.Request) -> web.Response:
    body = await read_json(request, dom.JurisdictionCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.create(con, principal(request), audit_ctx(request), body)
    return json_response(
        out,
        status=201,
        etag_version=out["version"],
        headers={"Location": f"/v1/jurisdictions/{out['code']}"},
    )


@api.endpoint(
    "GET",
    "/v1/jurisdictions/{code}",
    summary="One jurisdiction",
    tag=TAG,
    roles=("admin", "coordinator", "trainer", "observer"),
)
async def get_jurisdiction(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        row = await store.get_row(con, principal(request), request.match_info["code"])
    out = dom.to_json(row)
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PATCH",
    "/v1/jurisdictions/{code}",
    summary="Change name, centre or boundary",
    tag=TAG,
    body=dom.JurisdictionPatch,
    roles=("admin",),
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def patch_jurisdiction(request: web.Request) -> web.Response:
    body = await read_json(request, dom.JurisdictionPatch)
    async with request.app[POOL].acquire() as con:
        out = await store.update(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["code"],
            body,
            if_match(request),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "DELETE",
    "/v1/jurisdictions/{code}",
    summary="Delete an empty jurisdiction",
    tag=TAG,
    status=204,
    roles=("admin",),
)
async def delete_jurisdiction(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        await store.delete(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["code"],
            if_match(request),
        )
    return web.Response(status=204)
