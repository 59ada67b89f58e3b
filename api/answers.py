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

from datetime import timedelta

from aiohttp import web

from api.context import audit_ctx
from api.http import dumps, read_body, read_json
from api.keys import ANSWER_READS, ANSWERS, CLOCK, POOL, PRINCIPAL, SETTINGS
from api.middleware import (
    bearer_secret,
    check_key_length,
    replayed,
    request_digest,
    well_formed_key,
)
from api.problems import from_domain
from dispatch.assignments import Decline, Status
from dispatch.errors import DomainError, Unauthenticated
from dispatch.storage import answers as store
from dispatch.tokens import hash_secret

JSON = "application/json; charset=utf-8"


async def answer(request: web.Request, target: Status) -> web.Response:
    """Accept or decline the offer ``{id}`` for the caller (see the module's docstring)."""
    secret = bearer_secret(request)
    if request.body_exists:
        await read_body(request)  # an oversized body is refused (413) before anything else
    key = request.headers.get("Idempotency-Key")
    keyed = None
    if key is not None and well_formed_key(key):
        digest = await request_digest(request)
        keyed = store.Keyed(key, request.method, request.path, digest)
    assignment_id = request.match_info["id"]
    app = request.app
    wanted = store.Wanted(hash_secret(secret), keyed.key if keyed else None, assignment_id)
    while True:
        # Read and stored together with the answers arriving at the same time.
        seen = await app[ANSWER_READS].read(wanted)
        if seen is None:
            raise Unauthenticated("the token is unknown or revoked")
        who = request[PRINCIPAL] = seen.principal
        if key is not None and keyed is None:
            check_key_length(key)  # after authentication, as for every other POST
        if seen.stored is not None and keyed is not None:
            return replayed(seen.stored, keyed.key, keyed.digest)
        now = app[CLOCK].now()
        try:
            reason = ""
            if target is Status.DECLINED and request.body_exists:
                reason = (await read_json(request, Decline)).reason
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
        due = now + timedelta(seconds=app[SETTINGS].replan_debounce_s)
        item = store.Answer(who, audit_ctx(request, at=now), planned, keyed, body, JSON, due)
        outcome = await app[ANSWERS].store(item)
        if outcome is store.Outcome.DONE:
            return web.Response(body=body, headers={"Content-Type": JSON})
