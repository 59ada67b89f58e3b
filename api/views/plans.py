"""``/v1/plans`` and the engine: what was decided, why, and what is still missing."""

from __future__ import annotations

from aiohttp import web

from api.http import ListQuery, decode_cursor, json_response, page, principal
from api.keys import ENGINE, POOL, RUNNER
from api.spec import Api, query_params
from dispatch.access import Action
from dispatch.errors import NotFound
from dispatch.storage import engine as engine_store
from dispatch.storage import plans as store

api = Api()
TAG = "plans"
READERS = ("admin", "coordinator", "observer")


def _plan_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise NotFound(f"no plan {raw!r}")
    return int(raw)


@api.endpoint(
    "GET",
    "/v1/plans",
    summary="Recent plans, newest first",
    tag=TAG,
    query=ListQuery,
    roles=READERS,
)
async def list_plans(request: web.Request) -> web.Response:
    q = query_params(request, ListQuery)
    before = decode_cursor(q.cursor)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_plans(
            con, principal(request), int(before) if before is not None else None, q.limit + 1
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "GET", "/v1/plans/{id}", summary="A plan with the reason for every pick", tag=TAG, roles=READERS
)
async def get_plan(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get(con, principal(request), _plan_id(request))
    return json_response(out)


@api.endpoint(
    "GET",
    "/v1/plans/{id}/snapshot",
    summary="The solver input of a plan (replay)",
    tag=TAG,
    roles=("admin",),
)
async def get_snapshot(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.snapshot(con, principal(request), _plan_id(request))
    return json_response(out)


@api.endpoint(
    "GET",
    "/v1/incidents/{id}/plan",
    summary="The current plan for one incident",
    tag=TAG,
    roles=READERS,
)
async def incident_plan(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.for_incident(con, principal(request), request.match_info["id"])
    return json_response(out)


@api.endpoint(
    "GET",
    "/v1/unmet",
    summary="Unmet demand per incident and skill or item",
    tag=TAG,
    roles=READERS,
)
async def unmet(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.unmet(con, principal(request))
    return json_response(out)


@api.endpoint(
    "GET",
    "/v1/engine",
    summary="Engine timers and leadership",
    tag=TAG,
    roles=("admin", "coordinator"),
)
async def engine_state(request: web.Request) -> web.Response:
    principal(request).require("incident", Action.WRITE)
    async with request.app[POOL].acquire() as con:
        st = await engine_store.state(con)
        due = await engine_store.next_due(con)
    runner = request.app[RUNNER]
    return json_response(
        {
            "leader_here": bool(runner and runner.is_leader),
            "next_due": due,
            "replan_due_at": st["replan_due_at"],
            "cadence_due_at": st["cadence_due_at"],
            "last_plan": st["last_plan_id"],
            "last_plan_at": st["last_plan_at"],
            "pending_reasons": st["reasons"],
        }
    )


@api.endpoint(
    "POST",
    "/v1/engine/replan",
    summary="Ask for a re-plan now",
    tag=TAG,
    status=202,
    roles=("admin", "coordinator"),
)
async def replan(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("incident", Action.WRITE)
    engine = request.app[ENGINE]
    async with request.app[POOL].acquire() as con:
        await engine_store.request_replan(con, engine.clock.now(), f"requested by {who.actor}", 0)
    return json_response({"status": "requested"}, status=202)
