"""Answering an offer over HTTP (accept, decline): the one fast path through the API.

Volunteers answer in bulk during a crisis, so these two routes authenticate the caller and
honour ``Idempotency-Key`` themselves (marked :func:`api.middleware.self_authenticating`; every
other route keeps the generic middlewares) with the same guarantees and answers:

- a missing, unknown or revoked token is a 401; a key outside 1..200 characters a 422;
- a key already used by this token replays its stored answer byte for byte
  (``Idempotent-Replayed: true``), or is refused when it was used for a different request (422)
  or its request still runs (409);
- a refused answer (404 without leaking existence, 409 expired or withdrawn, 415/422 bad body)
  is kept under the key, so a retry gets the same refusal;
- an accepted answer is written in one transaction with its key and finished response, its
  audit row, and for a decline the pair rule and the re-plan request
  (:mod:`dispatch.storage.answers`): one read and one commit, each shared with the answers
  that arrive at the same time (:mod:`dispatch.storage.answer_batch`), instead of three
  commits; the response is sent once that commit is done.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from aiohttp import web

from api.http import dumps, read_body
from api.keys import ANSWER_READS, ANSWERS, CLOCK, POOL, PRINCIPAL, REQUEST_ID, SETTINGS
from api.middleware import bearer_secret, check_key_length, replayed
from api.problems import from_domain
from dispatch.assignments import Decline, Status
from dispatch.audit import AuditContext
from dispatch.errors import DomainError, Unauthenticated, UnsupportedMediaType
from dispatch.storage import answers as store
from dispatch.tokens import hash_secret
from dispatch.validation import parse_json

JSON = "application/json; charset=utf-8"


def _reason(request: web.Request, raw: bytes) -> str:
    """The decline's reason from its optional JSON body (415 / 422 like ``read_json``)."""
    if not request.body_exists:
        return ""
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise UnsupportedMediaType(
            f"expected application/json, got {request.content_type or 'nothing'}"
        )
    return parse_json(Decline, raw).reason


async def answer(request: web.Request, target: Status) -> web.Response:
    """Accept or decline the offer ``{id}`` for the caller (see the module's docstring)."""
    secret = bearer_secret(request)
    key = request.headers.get("Idempotency-Key")
    usable = key is not None and 1 <= len(key) <= 200
    raw = await read_body(request) if request.body_exists else b""
    keyed = None
    if key is not None and usable:
        digest = hashlib.sha256(
            b"\n".join([request.method.encode(), request.path_qs.encode(), raw])
        ).hexdigest()
        keyed = store.Keyed(key, request.method, request.path, digest)
    assignment_id = request.match_info["id"]
    app = request.app
    token_hash = hash_secret(secret)
    wanted = store.Wanted(token_hash, keyed.key if keyed else None, assignment_id)
    while True:
        # Read and stored together with the answers arriving at the same time.
        seen = await app[ANSWER_READS].read(wanted)
        if seen is None:
            raise Unauthenticated("the token is unknown or revoked")
        who = request[PRINCIPAL] = seen.principal
        if key is not None and keyed is None:
            check_key_length(key)  # after authentication, as for every other POST
        if seen.stored is not None and keyed is not None:
            s = seen.stored
            return replayed(
                s.request_hash, s.status_code, s.body, s.content_type, keyed.key, keyed.digest
            )
        now = app[CLOCK].now()
        try:
            reason = _reason(request, raw) if target is Status.DECLINED else ""
            planned = store.plan(seen, assignment_id, target, reason, now)
        except DomainError as exc:
            refusal = from_domain(exc, request)
            if keyed is None:
                return refusal
            body = refusal.body if isinstance(refusal.body, bytes) else b""
            ctype = refusal.headers.get("Content-Type", "application/problem+json")
            async with app[POOL].acquire() as con:
                kept = await store.refuse(con, who, keyed, refusal.status, body, ctype)
            if kept:
                return refusal
            continue  # the key was taken meanwhile: replay what it holds
        body = dumps(planned.after).encode()
        ctx = AuditContext(
            actor=who.actor,
            actor_role=who.role.value,
            request_id=request.get(REQUEST_ID),
            at=now,
        )
        due = now + timedelta(seconds=app[SETTINGS].replan_debounce_s)
        outcome = await app[ANSWERS].store(store.Answer(who, ctx, planned, keyed, body, JSON, due))
        if outcome is store.Outcome.DONE:
            return web.Response(body=body, headers={"Content-Type": JSON})
