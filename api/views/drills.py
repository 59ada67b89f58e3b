"""``/v1/drills``: the trainer API (create a drill from a scenario, start, pause, resume, stop,
status, the after-action report), and ``/v1/me/drills``: real participants answering their
exercise offers. Drills run in their own schemas (:mod:`drills.service`); nothing here writes a
live operational table."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BeforeValidator, ConfigDict, Field

from api.context import audit_ctx
from api.http import ListQuery, comma_list, decode_cursor, json_response, page, principal, read_json
from api.keys import POOL
from api.spec import Api, query_params
from dispatch import drills as dom
from dispatch.access import Action
from dispatch.assignments import Decline, StatusUpdate
from dispatch.errors import Conflict
from dispatch.storage import assignments as asg_store
from dispatch.storage import drills as store
from dispatch.validation import Strict
from drills.service import DrillService

api = Api()
TAG = "drills"
READERS = ("admin", "trainer", "coordinator", "observer")
WRITERS = ("admin", "trainer")
PARTICIPANT = ("volunteer (participant)",)

DRILLS = web.AppKey("drills", DrillService)


class DrillQuery(ListQuery):
    """Filters for listing drills; ``status`` repeats or takes a comma list."""

    status: Annotated[list[dom.DrillStatus], BeforeValidator(comma_list)] | None = None


class Limit(Strict):
    """At most ``limit`` items (lax types: they come from the query string)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    limit: int = Field(default=100, ge=1, le=1000)


class MyDrillsQuery(Limit):
    """Drills the caller takes part in; by default the ones under way."""

    status: Annotated[list[dom.DrillStatus], BeforeValidator(comma_list)] = Field(
        default_factory=lambda: [dom.DrillStatus.RUNNING, dom.DrillStatus.PAUSED]
    )


def _service(request: web.Request) -> DrillService:
    return request.app[DRILLS]


# ---- trainer API -----------------------------------------------------------------------------


@api.endpoint(
    "POST",
    "/v1/drills",
    summary="Create a drill from a scenario (YAML text or a bundled scenario)",
    tag=TAG,
    body=dom.DrillCreate,
    status=201,
    roles=WRITERS,
    responses={
        403: "The roster snapshot's jurisdiction is outside the token's scope",
        422: "Malformed scenario (each error names the field and its YAML line), bad speed or"
        " participants",
    },
)
async def create_drill(request: web.Request) -> web.Response:
    principal(request).require("drill", Action.WRITE)
    body = await read_json(request, dom.DrillCreate)
    async with request.app[POOL].acquire() as con:
        out = await _service(request).create(con, principal(request), audit_ctx(request), body)
    return json_response(
        out, status=201, etag_version=out["version"], headers={"Location": out["links"]["self"]}
    )


@api.endpoint(
    "GET", "/v1/drills", summary="List drills in scope", tag=TAG, query=DrillQuery, roles=READERS
)
async def list_drills(request: web.Request) -> web.Response:
    q = query_params(request, DrillQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            statuses=[s.value for s in q.status] if q.status else None,
            cursor=decode_cursor(q.cursor, str),
            limit=q.limit + 1,
        )
    svc = _service(request)
    return json_response(page([svc.view(r) for r in rows], q.limit, "id"))


@api.endpoint(
    "GET",
    "/v1/drills/{id}",
    summary="A drill: status, progress, simulated time",
    tag=TAG,
    roles=READERS,
)
async def get_drill(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        row = await store.get(con, principal(request), request.match_info["id"])
    out = _service(request).view(row)
    return json_response(out, etag_version=out["version"])


def _action(action: dom.Action, summary: str, extra: dict[int, str] | None = None) -> Any:
    async def view(request: web.Request) -> web.Response:
        async with request.app[POOL].acquire() as con:
            out = await _service(request).act(
                con, principal(request), audit_ctx(request), request.match_info["id"], action
            )
        # A running drill stops between two events: the stop is accepted, not yet done.
        status = 202 if action == "stop" and out["status"] != "stopped" else 200
        return json_response(out, status=status, etag_version=out["version"])

    view.__name__ = f"{action}_drill"
    view.__doc__ = summary
    api.endpoint(
        "POST",
        f"/v1/drills/{{id}}/{action}",
        summary=summary,
        tag=TAG,
        roles=WRITERS,
        responses={409: "Not allowed in the drill's current status", **(extra or {})},
    )(view)
    return view


start_drill = _action(
    "start",
    "Start a created drill (it runs in the background on this instance)",
    {409: "Not created, or this instance already runs its maximum of drills"},
)
pause_drill = _action("pause", "Pause a running drill (its simulated clock stops)")
resume_drill = _action("resume", "Resume a paused drill")
stop_drill = _action(
    "stop",
    "Stop a drill: at once if it never started; otherwise 202, and it ends between two events"
    " with a partial report",
    {202: "Stop requested; poll the drill until its status is 'stopped'"},
)


async def _report_row(request: web.Request) -> Any:
    async with request.app[POOL].acquire() as con:
        row = await store.get(con, principal(request), request.match_info["id"])
        rep = await store.report(con, row["id"])
    if rep["report"] is None:
        raise Conflict(
            f"the drill has no report (status {rep['status']})",
            extra={"status": rep["status"]},
        )
    return rep


@api.endpoint(
    "GET",
    "/v1/drills/{id}/report",
    summary="The after-action report (JSON, every figure)",
    tag=TAG,
    roles=READERS,
    responses={409: "No report yet (the drill has not ended, or it failed)"},
)
async def drill_report(request: web.Request) -> web.Response:
    rep = await _report_row(request)
    return json_response(rep["report"])


@api.endpoint(
    "GET",
    "/v1/drills/{id}/report.html",
    summary="The after-action report as a self-contained HTML page with plots",
    tag=TAG,
    roles=READERS,
    responses={409: "No report yet"},
)
async def drill_report_html(request: web.Request) -> web.Response:
    rep = await _report_row(request)
    return web.Response(
        text=rep["report_html"] or "",
        content_type="text/html",
        headers={
            # Self-contained: inline styles and data: images only, nothing fetched or run.
            "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        },
    )


# ---- real participants -----------------------------------------------------------------------


@api.endpoint(
    "GET",
    "/v1/me/drills",
    summary="Drills the caller takes part in (by default those under way)",
    tag=TAG,
    query=MyDrillsQuery,
    roles=PARTICIPANT,
)
async def my_drills(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("me", Action.READ)
    q = query_params(request, MyDrillsQuery)
    assert who.person_id is not None
    async with request.app[POOL].acquire() as con:
        rows = await store.participating(con, who.person_id, [s.value for s in q.status])
    items = [
        {
            "id": r["id"],
            "name": r["name"],
            "status": r["status"],
            "speed": r["options"]["speed"],
            "started_at": r["started_at"].isoformat() if r["started_at"] else None,
            "exercise": True,
        }
        for r in rows
    ]
    return json_response({"items": items[: q.limit], "next": None})


@api.endpoint(
    "GET",
    "/v1/me/drills/{drill}/assignments",
    summary="Own assignments in a drill under way",
    tag=TAG,
    query=Limit,
    roles=PARTICIPANT,
)
async def my_drill_assignments(request: web.Request) -> web.Response:
    who = principal(request)
    q = query_params(request, Limit)

    async def read(dcon: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await asg_store.list_rows(
            dcon, who, person=None, incident=None, statuses=None, cursor=None, limit=q.limit + 1
        )
        return rows

    async with request.app[POOL].acquire() as con:
        rows = await _service(request).participant_read(con, who, request.match_info["drill"], read)
    drill_id = request.match_info["drill"]
    return json_response({"items": [_exercise(drill_id, r) for r in rows[: q.limit]], "next": None})


def _exercise(drill_id: str, out: dict[str, Any]) -> dict[str, Any]:
    return {**out, "exercise": True, "drill": drill_id}


async def _answer(request: web.Request, op: Any) -> web.Response:
    who = principal(request)
    drill_id = request.match_info["drill"]
    assignment_id = request.match_info["id"]
    async with request.app[POOL].acquire() as con:
        out = await _service(request).answer(
            con,
            who,
            audit_ctx(request),
            drill_id,
            lambda dcon, ctx, now, debounce_s: op(dcon, ctx, assignment_id, now, debounce_s),
        )
    return json_response(_exercise(drill_id, out))


_ANSWER_ERRORS = {
    404: "Not a participant of this drill, or not the caller's assignment",
    409: "The drill is not running, or the offer expired or was withdrawn",
}


@api.endpoint(
    "POST",
    "/v1/me/drills/{drill}/assignments/{id}/accept",
    summary="Accept an exercise offer (applied inside the drill at its simulated time)",
    tag=TAG,
    roles=PARTICIPANT,
    responses=_ANSWER_ERRORS,
)
async def accept_drill_offer(request: web.Request) -> web.Response:
    who = principal(request)

    async def op(dcon: Any, ctx: Any, aid: str, now: Any, _debounce: float) -> Any:
        return await asg_store.accept(dcon, who, ctx, aid, now)

    return await _answer(request, op)


@api.endpoint(
    "POST",
    "/v1/me/drills/{drill}/assignments/{id}/decline",
    summary="Decline an exercise offer (optional reason)",
    tag=TAG,
    body=Decline,
    roles=PARTICIPANT,
    responses=_ANSWER_ERRORS,
)
async def decline_drill_offer(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, Decline) if request.body_exists else Decline()

    async def op(dcon: Any, ctx: Any, aid: str, now: Any, debounce_s: float) -> Any:
        return await asg_store.decline(dcon, who, ctx, aid, body.reason, now, debounce_s=debounce_s)

    return await _answer(request, op)


@api.endpoint(
    "POST",
    "/v1/me/drills/{drill}/assignments/{id}/status",
    summary="Report en_route, on_scene or done on an exercise assignment",
    tag=TAG,
    body=StatusUpdate,
    roles=PARTICIPANT,
    responses=_ANSWER_ERRORS,
)
async def drill_assignment_status(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, StatusUpdate)
    position = (body.lat, body.lon) if body.lat is not None and body.lon is not None else None

    async def op(dcon: Any, ctx: Any, aid: str, now: Any, _debounce: float) -> Any:
        return await asg_store.report_status(dcon, who, ctx, aid, body.target(), now, position)

    return await _answer(request, op)


__all__ = ["DRILLS", "api"]
