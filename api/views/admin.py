"""``/v1/tokens`` and ``/v1/audit``: administration."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from api.context import audit_ctx
from api.http import ListQuery, decode_cursor, json_response, page, principal, read_json
from api.keys import POOL
from api.spec import Api, query_params
from dispatch.access import Action, Principal
from dispatch.errors import Forbidden
from dispatch.storage import audit_log, tokens
from dispatch.tokens import TokenCreate

api = Api()


@api.endpoint(
    "POST",
    "/v1/tokens",
    summary="Create an API token (the secret is shown once)",
    tag="admin",
    body=TokenCreate,
    status=201,
    roles=("admin",),
)
async def create_token(request: web.Request) -> web.Response:
    body = await read_json(request, TokenCreate)
    async with request.app[POOL].acquire() as con:
        secret, out = await tokens.create(con, principal(request), audit_ctx(request), body)
    return json_response({**out, "token": secret}, status=201)


@api.endpoint(
    "GET",
    "/v1/tokens",
    summary="List tokens in scope",
    tag="admin",
    query=ListQuery,
    roles=("admin",),
)
async def list_tokens(request: web.Request) -> web.Response:
    q = query_params(request, ListQuery)
    async with request.app[POOL].acquire() as con:
        rows = await tokens.list_tokens(
            con, principal(request), decode_cursor(q.cursor), q.limit + 1
        )
    return json_response(page(rows, q.limit, "id"))


@api.endpoint(
    "POST",
    "/v1/tokens/{id}/revoke",
    summary="Revoke a token",
    tag="admin",
    roles=("admin",),
)
async def revoke_token(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as con:
        out = await tokens.revoke(
            con, principal(request), audit_ctx(request), request.match_info["id"]
        )
    return json_response(out)


def _require_whole_log(who: Principal) -> None:
    """The log spans every jurisdiction (before/after include personal data), so only an
    unscoped admin may read it; a scoped admin would otherwise see outside its scope."""
    who.require("audit", Action.READ)
    if who.scope_path is not None:
        raise Forbidden("the audit log spans every jurisdiction; it needs an unscoped admin token")


class AuditQuery(ListQuery):
    """Filters for the audit log."""

    object_type: str | None = Field(default=None, max_length=64)
    object_id: str | None = Field(default=None, max_length=128)
    actor: str | None = Field(default=None, max_length=128)


@api.endpoint(
    "GET",
    "/v1/audit",
    summary="Read the audit log (chain order)",
    tag="admin",
    query=AuditQuery,
    roles=("admin",),
)
async def list_audit(request: web.Request) -> web.Response:
    q = query_params(request, AuditQuery)
    _require_whole_log(principal(request))
    after = decode_cursor(q.cursor)
    async with request.app[POOL].acquire() as con:
        rows = await audit_log.list_entries(
            con,
            after_seq=int(after) if after is not None else None,
            object_type=q.object_type,
            object_id=q.object_id,
            actor=q.actor,
            limit=q.limit + 1,
        )
    return json_response(page(rows, q.limit, "seq"))


@api.endpoint(
    "GET",
    "/v1/audit/verify",
    summary="Verify the audit hash chain",
    tag="admin",
    roles=("admin",),
)
async def verify_audit(request: web.Request) -> web.Response:
    _require_whole_log(principal(request))
    async with request.app[POOL].acquire() as con:
        report = await audit_log.verify(con)
    return json_response(
        {
            "ok": report.ok,
            "rows": report.rows,
            "head_hash": report.head_hash,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
        }
    )
