"""``/v1/webhooks``: gateway endpoints, their deliveries, the dead-letter list and replays."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from api.context import audit_ctx
from api.http import (
    ListQuery,
    decode_cursor,
    if_match,
    json_response,
    page,
    principal,
    read_json,
)
from api.keys import CLOCK, POOL
from api.spec import Api, query_params
from dispatch import webhooks as dom
from dispatch.storage import webhooks as store

api = Api()
TAG = "webhooks"
ADMIN = ("admin",)


class DeliveryQuery(ListQuery):
    """Filters for an endpoint's deliveries (``status=dead`` is the dead-letter list)."""

    status: Literal["pending", "delivered", "dead"] | None = Field(default=None)


@api.endpoint(
    "POST",
    "/v1/webhooks",
    summary="Register a webhook endpoint (the signing secret is shown once)",
    tag=TAG,
    body=dom.EndpointCreate,
    status=201,
    roles=ADMIN,
)
async def create_webhook(request: web.Request) -> web.Response:
    body = await read_json(request, dom.EndpointCreate)
    async with request.app[POOL].acquire() as con:
        secret, out = await store.create(
            con, principal(request), audit_ctx(request), body, request.app[CLOCK].now()
        )
    return json_response(
        {**out, "secret": secret},
        status=201,
        etag_version=out["version"],
        headers={"Location": f"/v1/webhooks/{out['id']}"},
    )


@api.endpoint(
    "GET",
    "/v1/webhooks",
    summary="List webhook endpoints in scope",
    tag=TAG,
    query=ListQuery,
    roles=ADMIN,
)
async def list_webhooks(request: web.Request) -> web.Response:
    q = query_params(request, ListQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_endpoints(
            con, principal(request), decode_cursor(q.cursor), q.limit + 1
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint("GET", "/v1/webhooks/{id}", summary="One webhook endpoint", tag=TAG, roles=ADMIN)
async def get_webhook(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get(con, principal(request), request.match_info["id"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PATCH",
    "/v1/webhooks/{id}",
    summary="Change URL, kinds, description; enable or disable",
    tag=TAG,
    body=dom.EndpointPatch,
    roles=ADMIN,
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def patch_webhook(request: web.Request) -> web.Response:
    body = await read_json(request, dom.EndpointPatch)
    async with request.app[POOL].acquire() as con:
        out = await store.update(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body,
            if_match(request),
            request.app[CLOCK].now(),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "DELETE",
    "/v1/webhooks/{id}",
    summary="Remove a webhook endpoint and its deliveries",
    tag=TAG,
    status=204,
    roles=ADMIN,
)
async def delete_webhook(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        await store.delete(
            con, principal(request), audit_ctx(request), request.match_info["id"], if_match(request)
        )
    return web.Response(status=204)


@api.endpoint(
    "POST",
    "/v1/webhooks/{id}/rotate-secret",
    summary="New signing secret (shown once); the old one may sign on for grace_seconds",
    tag=TAG,
    body=dom.RotateSecret,
    roles=ADMIN,
)
async def rotate_secret(request: web.Request) -> web.Response:
    body = await read_json(request, dom.RotateSecret) if request.body_exists else dom.RotateSecret()
    async with request.app[POOL].acquire() as con:
        secret, out = await store.rotate_secret(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body,
            request.app[CLOCK].now(),
        )
    return json_response({**out, "secret": secret}, etag_version=out["version"])


@api.endpoint(
    "GET",
    "/v1/webhooks/{id}/deliveries",
    summary="Deliveries of an endpoint in message order (status=dead: the dead-letter list)",
    tag=TAG,
    query=DeliveryQuery,
    roles=ADMIN,
)
async def list_deliveries(request: web.Request) -> web.Response:
    q = query_params(request, DeliveryQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_deliveries(
            con,
            principal(request),
            request.match_info["id"],
            status=q.status,
            cursor=decode_cursor(q.cursor, int),
            limit=q.limit + 1,
        )
    out = page(rows, q.limit, "n")
    return json_response({**out, "items": [dom.delivery_to_json(r) for r in out["items"]]})


@api.endpoint(
    "POST",
    "/v1/webhooks/{id}/deliveries/{delivery_id}/replay",
    summary="Put a dead delivery back in the queue (attempts reset)",
    tag=TAG,
    roles=ADMIN,
    responses={409: "The delivery is not dead"},
)
async def replay_delivery(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.replay(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            request.match_info["delivery_id"],
            request.app[CLOCK].now(),
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/webhooks/{id}/replay-dead",
    summary="Put every dead delivery of the endpoint back in the queue",
    tag=TAG,
    roles=ADMIN,
)
async def replay_dead(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        n = await store.replay_dead(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            request.app[CLOCK].now(),
        )
    return json_response({"replayed": n})
