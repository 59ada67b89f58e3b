"""Modes: ``/v1/jurisdictions/{code}/mode``, ``/v1/modes`` and ``/v1/mode-policies``."""

from __future__ import annotations

from aiohttp import web
from pydantic import ConfigDict, Field

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, if_match, json_response, page, principal, read_json
from api.keys import CLOCK, POOL, SETTINGS
from api.spec import Api, query_params
from dispatch import modes as dom
from dispatch.services import mobilisation
from dispatch.storage import modes as store
from dispatch.validation import Strict

api = Api()
TAG = "modes"
READERS = ("admin", "coordinator", "trainer", "observer")


class ModeQuery(Strict):
    """How much history ``GET /v1/jurisdictions/{code}/mode`` includes."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    history: int = Field(default=20, ge=0, le=500)


class ModeListQuery(ListQuery):
    """Filters for listing own mode settings."""

    mode: dom.ModeKind | None = None
    level: dom.Level | None = None


@api.endpoint(
    "GET",
    "/v1/jurisdictions/{code}/mode",
    summary="Own and effective mode of a node, the policy in force and recent history",
    tag=TAG,
    query=ModeQuery,
    roles=READERS,
)
async def get_mode(request: web.Request) -> web.Response:
    q = query_params(request, ModeQuery)
    async with request.app[POOL].acquire() as con:
        out = await store.get_mode(
            con, principal(request), request.match_info["code"], history_limit=q.history
        )
    return json_response(out, etag_version=out["own"]["version"] if out["own"] else 0)


@api.endpoint(
    "PUT",
    "/v1/jurisdictions/{code}/mode",
    summary="Set a node's own mode (routine, or emergency at level IV … I), with a reason",
    tag=TAG,
    body=dom.ModeChange,
    roles=("admin", "coordinator"),
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def put_mode(request: web.Request) -> web.Response:
    body = await read_json(request, dom.ModeChange)
    async with request.app[POOL].acquire() as con:
        out = await mobilisation.change_mode(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["code"],
            body,
            if_match(request),
            request.app[CLOCK].now(),
            exercise=False,
            debounce_s=request.app[SETTINGS].replan_debounce_s,
        )
    return json_response(out, etag_version=out["own"]["version"])


@api.endpoint(
    "GET",
    "/v1/modes",
    summary="Nodes in scope with an own mode setting",
    tag=TAG,
    query=ModeListQuery,
    roles=READERS,
)
async def list_modes(request: web.Request) -> web.Response:
    q = query_params(request, ModeListQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_modes(
            con,
            principal(request),
            mode=q.mode.value if q.mode else None,
            level=q.level.value if q.level else None,
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "code"))


@api.endpoint(
    "GET",
    "/v1/mode-policies",
    summary="Every mode policy, routine to I",
    tag=TAG,
    roles=READERS,
)
async def list_policies(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        items = await store.list_policies(con, principal(request))
    return json_response({"items": items, "next": None})


@api.endpoint(
    "GET",
    "/v1/mode-policies/{key}",
    summary="One mode policy (routine, IV, III, II or I)",
    tag=TAG,
    roles=READERS,
)
async def get_policy(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get_policy(con, principal(request), request.match_info["key"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PUT",
    "/v1/mode-policies/{key}",
    summary="Replace a mode policy (unscoped admins)",
    tag=TAG,
    body=dom.ModePolicyPut,
    roles=("admin",),
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def put_policy(request: web.Request) -> web.Response:
    body = await read_json(request, dom.ModePolicyPut)
    async with request.app[POOL].acquire() as con:
        out = await store.update_policy(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["key"],
            body,
            if_match(request),
        )
    return json_response(out, etag_version=out["version"])
