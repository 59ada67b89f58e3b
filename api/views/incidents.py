"""``/v1/incidents``: declaring, updating and moving incidents through their lifecycle."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BeforeValidator

from api.context import audit_ctx
from api.http import (
    ListQuery,
    comma_list,
    decode_cursor,
    if_match,
    json_response,
    page,
    principal,
    read_json,
)
from api.keys import CLOCK, POOL, SETTINGS
from api.spec import Api, query_params
from dispatch import incidents as dom
from dispatch.access import Action
from dispatch.services.mobilisation import incident_hook
from dispatch.storage import incidents as store
from dispatch.validation import Code, Priority

api = Api()


def _engine_hook(request: web.Request) -> store.ChangeHook:
    """Re-plan (debounced) and release on close, inside the incident change's transaction."""
    return incident_hook(
        request.app[CLOCK].now(),
        exercise=False,
        debounce_s=request.app[SETTINGS].replan_debounce_s,
    )


TAG = "incidents"
READERS = ("admin", "coordinator", "observer")
WRITERS = ("admin", "coordinator")


class IncidentQuery(ListQuery):
    """Filters for listing incidents; ``status`` and ``priority`` repeat or take comma lists."""

    jurisdiction: Code | None = None
    status: Annotated[list[dom.IncidentStatus], BeforeValidator(comma_list)] | None = None
    priority: Annotated[list[Priority], BeforeValidator(comma_list)] | None = None
    type: dom.IncidentType | None = None
    open: bool = False


@api.endpoint(
    "GET",
    "/v1/incidents",
    summary="List incidents in scope",
    tag=TAG,
    query=IncidentQuery,
    roles=READERS,
)
async def list_incidents(request: web.Request) -> web.Response:
    q = query_params(request, IncidentQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            jurisdiction=q.jurisdiction,
            statuses=[s.value for s in q.status] if q.status else None,
            priorities=list(q.priority) if q.priority else None,
            type_=q.type,
            open_only=q.open,
            cursor=decode_cursor(q.cursor, str),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "POST",
    "/v1/incidents",
    summary="Declare an incident",
    tag=TAG,
    body=dom.IncidentCreate,
    status=201,
    roles=WRITERS,
    responses={403: "Jurisdiction outside the token's scope", 409: "Incident id already exists"},
)
async def create_incident(request: web.Request) -> web.Response:
    principal(request).require("incident", Action.WRITE)
    body = await read_json(request, dom.IncidentCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.create(
            con, principal(request), audit_ctx(request), body, on_change=_engine_hook(request)
        )
    return json_response(
        out,
        status=201,
        etag_version=out["version"],
        headers={"Location": f"/v1/incidents/{out['id']}"},
    )


@api.endpoint("GET", "/v1/incidents/{id}", summary="One incident", tag=TAG, roles=READERS)
async def get_incident(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get(con, principal(request), request.match_info["id"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PATCH",
    "/v1/incidents/{id}",
    summary="Change an open incident (demands, supplies, priority, location...)",
    tag=TAG,
    body=dom.IncidentPatch,
    roles=WRITERS,
    responses={409: "Stale version in body, or the incident is closed", 412: "If-Match mismatch"},
)
async def patch_incident(request: web.Request) -> web.Response:
    principal(request).require("incident", Action.WRITE)
    body = await read_json(request, dom.IncidentPatch)
    async with request.app[POOL].acquire() as con:
        out = await store.update(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body,
            if_match(request),
            on_change=_engine_hook(request),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "POST",
    "/v1/incidents/{id}/status",
    summary="Move an incident along reported → active → contained → closed",
    tag=TAG,
    body=dom.StatusChange,
    roles=WRITERS,
    responses={409: "Illegal transition or stale version", 412: "If-Match mismatch"},
)
async def change_status(request: web.Request) -> web.Response:
    principal(request).require("incident", Action.WRITE)
    body = await read_json(request, dom.StatusChange)
    async with request.app[POOL].acquire() as con:
        out = await store.set_status(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body,
            if_match(request),
            on_change=_engine_hook(request),
        )
    return json_response(out, etag_version=out["version"])
