"""``/v1/people``: the roster, and its bulk import ``/v1/people:import``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import StrEnum

from aiohttp import web
from pydantic import ConfigDict, Field

from api.context import audit_ctx
from api.http import (
    ListQuery,
    decode_cursor,
    if_match,
    json_response,
    page,
    principal,
    read_body,
    read_json,
)
from api.keys import POOL
from api.spec import Api, query_params
from dispatch import roster as dom
from dispatch.errors import UnsupportedMediaType
from dispatch.storage import people as store
from dispatch.storage import roster_import
from dispatch.validation import Code, Slug, Strict

api = Api()
TAG = "people"
READERS = ("admin", "coordinator", "observer", "volunteer (own record)")
WRITERS = ("admin", "coordinator")


class PeopleQuery(ListQuery):
    """Filters for listing people."""

    jurisdiction: Code | None = Field(default=None, description="this jurisdiction's subtree")
    kind: dom.PersonKind | None = None
    skill: Slug | None = Field(default=None, description="an effective (unexpired) skill")
    min_level: int | None = Field(default=None, ge=1, le=5, description="with skill: level ≥")
    active: bool | None = None
    reserve: bool | None = None
    q: str | None = Field(default=None, min_length=1, max_length=200, description="in name")


class ImportMode(StrEnum):
    """``all``: one bad row fails the import; ``partial``: import the good rows."""

    ALL = "all"
    PARTIAL = "partial"


class _Options(Strict):
    """Query-string options (lax types: they come from the query string)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ImportQuery(_Options):
    """Options of ``POST /v1/people:import``."""

    mode: ImportMode = ImportMode.ALL


class DeleteQuery(_Options):
    """Options of ``DELETE /v1/people/{id}``."""

    purge: bool = Field(default=False, description="admins: remove the row instead")


class ImportBody(Strict):
    """JSON import body: ``{"people": [...]}`` or a bare list of people (CSV also accepted)."""

    people: list[dom.PersonCreate]


@api.endpoint(
    "GET",
    "/v1/people",
    summary="List people in scope (contacts and home only for roles that may see them)",
    tag=TAG,
    query=PeopleQuery,
    roles=READERS,
)
async def list_people(request: web.Request) -> web.Response:
    q = query_params(request, PeopleQuery)
    async with request.app[POOL].acquire() as con:
        rows = await store.list_rows(
            con,
            principal(request),
            jurisdiction=q.jurisdiction,
            kind=q.kind.value if q.kind else None,
            skill=q.skill,
            min_level=q.min_level,
            on_date=datetime.now(UTC).date(),
            active=q.active,
            reserve=q.reserve,
            q=q.q,
            cursor=decode_cursor(q.cursor),
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "POST",
    "/v1/people:import",
    summary="Bulk import people from CSV or JSON (all-or-nothing unless mode=partial)",
    tag=TAG,
    body=ImportBody,
    body_media=("application/json", "text/csv"),
    query=ImportQuery,
    roles=WRITERS,
    responses={422: "Invalid rows (nothing written)", 403: "A row outside the token's scope"},
)
async def import_people(request: web.Request) -> web.Response:
    opts = query_params(request, ImportQuery)
    media = request.content_type
    if media in ("text/csv", "application/csv"):
        fmt = "csv"
    elif media == "application/json":
        fmt = "json"
    else:
        raise UnsupportedMediaType(f"send text/csv or application/json, not {media or 'nothing'}")
    raw = await read_body(request)
    # Validation of tens of thousands of rows is CPU work: keep it off the event loop.
    parsed = await asyncio.to_thread(roster_import.parse, raw, fmt)
    async with request.app[POOL].acquire() as con:
        out = await roster_import.import_people(
            con,
            principal(request),
            audit_ctx(request),
            parsed,
            partial=opts.mode is ImportMode.PARTIAL,
        )
    return json_response(out)


@api.endpoint(
    "POST",
    "/v1/people",
    summary="Create a person (id generated when absent)",
    tag=TAG,
    body=dom.PersonCreate,
    status=201,
    roles=WRITERS,
)
async def create_person(request: web.Request) -> web.Response:
    body = await read_json(request, dom.PersonCreate)
    async with request.app[POOL].acquire() as con:
        out = await store.create(con, principal(request), audit_ctx(request), body)
    return json_response(
        out,
        status=201,
        etag_version=out["version"],
        headers={"Location": f"/v1/people/{out['id']}"},
    )


@api.endpoint("GET", "/v1/people/{id}", summary="One person", tag=TAG, roles=READERS)
async def get_person(request: web.Request) -> web.Response:
    who = principal(request)
    async with request.app[POOL].acquire() as con:
        row = await store.get_row(con, who, request.match_info["id"])
    out = store.present(who, row)
    return json_response(out, etag_version=out["version"])


@api.endpoint(
    "PATCH",
    "/v1/people/{id}",
    summary="Replace some fields of a person",
    tag=TAG,
    body=dom.PersonPatch,
    roles=WRITERS,
    responses={409: "Stale version in body", 412: "If-Match does not match"},
)
async def patch_person(request: web.Request) -> web.Response:
    body = await read_json(request, dom.PersonPatch)
    async with request.app[POOL].acquire() as con:
        out = await store.update(
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
    "/v1/people/{id}",
    summary="Deactivate a person (admins: ?purge=true removes the row)",
    tag=TAG,
    query=DeleteQuery,
    status=204,
    roles=WRITERS,
    responses={409: "Purge refused: still referenced", 412: "If-Match does not match"},
)
async def delete_person(request: web.Request) -> web.Response:
    opts = query_params(request, DeleteQuery)
    async with request.app[POOL].acquire() as con:
        await store.delete(
            con,
            principal(request),
            audit_ctx(request),
            request.match_info["id"],
            if_match(request),
            purge=opts.purge,
        )
    return web.Response(status=204)
