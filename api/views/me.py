"""``/v1/me``: self-service for a volunteer token (own record, assignments, messages,
availability, check-in/out). Answers to offers are ``POST /v1/assignments/{id}/...``."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import ConfigDict, Field

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, json_response, page, principal, read_json
from api.keys import CLOCK, POOL, SETTINGS
from api.spec import Api, query_params
from dispatch.assignments import Status
from dispatch.delivery import AvailabilityUpdate
from dispatch.errors import FieldError, ValidationFailed
from dispatch.storage import me as store
from dispatch.validation import Strict

api = Api()
TAG = "me"
VOLUNTEER = ("volunteer (own)",)


class MyAssignmentsQuery(ListQuery):
    """Own assignments, optionally by status (comma-separated)."""

    status: Annotated[str, Field(pattern=r"^[a-z_]+(,[a-z_]+)*$")] | None = None


class MessagesQuery(Strict):
    """Plain replay of the outbox."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    since: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


def _statuses(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    statuses = raw.split(",")
    valid = {s.value for s in Status}
    bad = [s for s in statuses if s not in valid]
    if bad:
        raise ValidationFailed(
            f"unknown status {bad[0]!r}", errors=[FieldError("/status", "unknown status")]
        )
    return statuses


def _debounce(request: web.Request) -> float:
    return request.app[SETTINGS].replan_debounce_s


@api.endpoint(
    "GET",
    "/v1/me",
    summary="Own person record, active assignment and message positions",
    tag=TAG,
    roles=VOLUNTEER,
)
async def get_me(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.me(con, principal(request))
    return json_response(out, etag_version=out["person"]["version"])


@api.endpoint(
    "GET",
    "/v1/me/assignments",
    summary="Own assignments",
    tag=TAG,
    query=MyAssignmentsQuery,
    roles=VOLUNTEER,
)
async def my_assignments(request: web.Request) -> web.Response:
    q = query_params(request, MyAssignmentsQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.assignments(
            con,
            principal(request),
            statuses=_statuses(q.status),
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "GET",
    "/v1/me/messages",
    summary="Own messages after a sequence number (replay without a stream)",
    tag=TAG,
    query=MessagesQuery,
    roles=VOLUNTEER,
)
async def my_messages(request: web.Request) -> web.Response:
    q = query_params(request, MessagesQuery)
    async with request.app[POOL].acquire() as con:
        items = await store.messages(con, principal(request), q.since, q.limit + 1)
    more = len(items) > q.limit
    items = items[: q.limit]
    return json_response({"items": items, "next": items[-1]["seq"] if more else None})


@api.endpoint(
    "PUT",
    "/v1/me/availability",
    summary="Available or unavailable from now until a time (at most 7 days ahead)",
    tag=TAG,
    body=AvailabilityUpdate,
    roles=VOLUNTEER,
    responses={409: "Going unavailable while committed to an assignment"},
)
async def put_availability(request: web.Request) -> web.Response:
    body = await read_json(request, AvailabilityUpdate)
    async with request.app[POOL].acquire() as con:
        out = await store.set_availability(
            con,
            principal(request),
            audit_ctx(request),
            body,
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "POST",
    "/v1/me/check-in",
    summary="On duty from now (12 h or until check-out)",
    tag=TAG,
    roles=VOLUNTEER,
)
async def check_in(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.check_in(
            con,
            principal(request),
            audit_ctx(request),
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "POST",
    "/v1/me/check-out",
    summary="Off duty from now until the end of the shift",
    tag=TAG,
    roles=VOLUNTEER,
    responses={409: "Still committed to an assignment: report done first"},
)
async def check_out(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await store.check_out(
            con,
            principal(request),
            audit_ctx(request),
            request.app[CLOCK].now(),
            debounce_s=_debounce(request),
        )
    return json_response(out, etag_version=out["version"])
