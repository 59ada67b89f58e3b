"""``/v1/assignments`` and coordinator overrides on incidents (pins, forbids)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from api import answers
from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, json_response, page, principal, read_json
from api.keys import CLOCK, POOL, SETTINGS
from api.middleware import self_authenticating
from api.spec import Api, query_params
from dispatch.assignments import Decline, PairRuleCreate, Status, StatusUpdate
from dispatch.storage import assignments as store
from dispatch.storage import modes as mode_store
from dispatch.validation import Id, Strict

api = Api()
TAG = "assignments"
ANSWERING = ("volunteer (own)", "coordinator", "admin")


class AssignmentQuery(ListQuery):
    """Filters for assignments."""

    person: Id | None = None
    incident: Id | None = None
    status: Annotated[str, Field(pattern=r"^[a-z_]+(,[a-z_]+)*$")] | None = None


class Empty(Strict):
    """No fields."""


def _exercise(request: web.Request) -> bool:
    return False


def _debounce(request: web.Request) -> float:
    return request.app[SETTINGS].replan_debounce_s


@api.endpoint(
    "GET",
    "/v1/assignments",
    summary="List assignments in scope (volunteers: their own)",
    tag=TAG,
    query=AssignmentQuery,
    roles=("admin", "coordinator", "observer", "volunteer"),
)
async def list_assignments(request: web.Request) -> web.Response:
    q = query_params(request, AssignmentQuery)
    statuses = q.status.split(",") if q.status else None
    if statuses:
        valid = {s.value for s in Status}
        bad = [s for s in statuses if s not in valid]
        if bad:
            from dispatch.errors import FieldError, ValidationFailed

            raise ValidationFailed(
                f"unknown status {bad[0]!r}", errors=[FieldError("/status", "unknown status")]
            )
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            person=q.person,
            incident=q.incident,
            statuses=statuses,
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "GET",
    "/v1/assignments/{id}",
    summary="One assignment",
    tag=TAG,
    roles=("admin", "coordinator", "observer", "volunteer (own)"),
)
async def get_assignment(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.get(con, principal(request), request.match_info["id"])
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/accept",
    summary="Accept an offer",
    tag=TAG,
    roles=ANSWERING,
    responses={409: "The offer expired or was withdrawn"},
)
@self_authenticating
async def accept(request: web.Request) -> web.Response:
    return await answers.answer(request, Status.ACCEPTED)


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/decline",
    summary="Decline an offer (optional reason)",
    tag=TAG,
    body=Decline,
    roles=ANSWERING,
    responses={409: "The offer expired or was withdrawn"},
)
@self_authenticating
async def decline(request: web.Request) -> web.Response:
    return await answers.answer(request, Status.DECLINED)


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/status",
    summary="Report en_route, on_scene or done",
    tag=TAG,
    body=StatusUpdate,
    roles=ANSWERING,
)
async def report_status(request: web.Request) -> web.Response:
    body = await read_json(request, StatusUpdate)
    position = (body.lat, body.lon) if body.lat is not None and body.lon is not None else None
    async with request.app[POOL].acquire() as con:
        out = await store.report_status(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body.target(),
            request.app[CLOCK].now(),
            position,
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/cancel",
    summary="Cancel an assignment (coordinator)",
    tag=TAG,
    roles=("admin", "coordinator"),
)
async def cancel(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.cancel(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            request.app[CLOCK].now(),
            exercise=_exercise(request),
            debounce_s=_debounce(request),
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/unlock",
    summary="Let the solver move an accepted assignment",
    tag=TAG,
    roles=("admin", "coordinator"),
)
async def unlock(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.set_locked(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            False,
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/assignments/{id}/lock",
    summary="Keep an assignment fixed for the solver",
    tag=TAG,
    roles=("admin", "coordinator"),
)
async def lock(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.set_locked(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            True,
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/incidents/{id}/pins",
    summary="Pin a person to an incident (offered, locked)",
    tag=TAG,
    body=PairRuleCreate,
    status=201,
    roles=("admin", "coordinator"),
)
async def pin(request: web.Request) -> web.Response:
    body = await read_json(request, PairRuleCreate)
    incident_id = request.match_info["id"]
    async with request.app[POOL].acquire() as con:
        code = await con.fetchval(
            "SELECT jurisdiction_code FROM incidents WHERE id = $1", incident_id
        )
        eff = (await mode_store.effective_modes(con, [code])).get(code) if code else None
        policy = await mode_store.policy_for_jurisdiction(con, code) if code else None
        out = await store.pin(
            con,
            principal(request),
            audit_ctx(request),
            incident_id,
            body.person,
            body.skill,
            request.app[CLOCK].now(),
            offer_expiry_s=policy.offer_expiry_s if policy else 600,
            mode_key=eff.mode.key if eff else "routine",
            exercise=_exercise(request),
            debounce_s=_debounce(request),
        )
    return json_response(out, status=201)


@api.endpoint(
    "POST",
    "/v1/incidents/{id}/forbids",
    summary="Never send a person to this incident",
    tag=TAG,
    body=PairRuleCreate,
    status=201,
    roles=("admin", "coordinator"),
)
async def forbid(request: web.Request) -> web.Response:
    body = await read_json(request, PairRuleCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.forbid(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            body.person,
            request.app[CLOCK].now(),
            exercise=_exercise(request),
            debounce_s=_debounce(request),
        )
    return json_response(out, status=201)


@api.endpoint(
    "GET",
    "/v1/incidents/{id}/rules",
    summary="Pins, forbids, declines and expiries",
    tag=TAG,
    roles=("admin", "coordinator", "observer"),
)
async def list_rules(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.rules(con, principal(request), request.match_info["id"])
    return json_response({"items": out, "next": None})


@api.endpoint(
    "DELETE",
    "/v1/incidents/{id}/rules/{person}",
    summary="Remove a pin/forbid/decline rule",
    tag=TAG,
    status=204,
    roles=("admin", "coordinator"),
)
async def clear_rule(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        await store.clear_rule(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            request.match_info["person"],
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return web.Response(status=204)
