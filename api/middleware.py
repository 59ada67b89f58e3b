"""Request id, authentication and Idempotency-Key handling."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid

from aiohttp import web

from api.keys import POOL, PRINCIPAL, REQUEST_ID, SETTINGS
from api.problems import Handler, from_domain
from dispatch.errors import (
    DomainError,
    IdempotencyMismatch,
    PayloadTooLarge,
    RequestInProgress,
    Unauthenticated,
)
from dispatch.storage import idempotency, tokens

log = logging.getLogger("muster.api")

PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a sane ``X-Request-Id`` from the client or make one; echo it back."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    return response


#: The streams a browser opens with ``EventSource`` or ``WebSocket``, neither of which can set
#: an ``Authorization`` header: these routes alone (GET) also take ``?access_token=``.
QUERY_TOKEN_PATHS = frozenset({"/v1/me/stream", "/v1/me/ws", "/v1/stream"})
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']*")


def redact(text: str) -> str:
    """``text`` with the value of any ``access_token=`` parameter replaced."""
    return _QUERY_TOKEN.sub(r"\1[redacted]", text)


def _redacted(value: object) -> object:
    if isinstance(value, str) and "access_token=" in value:
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_redacted(v) for v in value)
    return value


class RedactQueryTokens(logging.Filter):
    """Keeps ``?access_token=`` values out of log records (the access log writes request
    lines, structured formats copy them into fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in list(record.__dict__.items()):
            if key in ("msg", "args") or isinstance(value, str | dict | tuple):
                setattr(record, key, _redacted(value))
        return True


# Whatever logs request lines: aiohttp's access log (when a deployment turns it on) and its
# server/web loggers. A filter on a logger sees the records logged to it directly.
for _name in ("aiohttp.access", "aiohttp.server", "aiohttp.web"):
    logging.getLogger(_name).addFilter(RedactQueryTokens())


def bearer_secret(request: web.Request) -> str:
    """The bearer token of a request; :class:`Unauthenticated` if there is none."""
    header = request.headers.get("Authorization")
    if header is None and request.method == "GET" and request.path in QUERY_TOKEN_PATHS:
        given = request.query.get("access_token", "").strip()
        if given:
            return given
        raise Unauthenticated(
            "send 'Authorization: Bearer <token>' (browsers: add ?access_token=<token>)"
        )
    scheme, _, secret = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    return secret.strip()


#: What the auth middleware already claimed for this request's ``Idempotency-Key`` (in the
#: statement that checked the token): ``(request digest, earlier request or None)``.
_CLAIMED = web.RequestKey("idempotency_claimed", tuple)


def _idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` if it is a POST carrying one."""
    return request.headers.get("Idempotency-Key") if request.method == "POST" else None


#: Bodies up to this size are hashed on the event loop (well under a millisecond); a larger one
#: (an import may reach ``max_import_bytes``) is hashed in a thread, hashlib releasing the GIL.
HASH_INLINE_BYTES = 256 * 1024


async def request_digest(request: web.Request) -> str:
    """What a retry must repeat exactly: method, path with query, and body."""
    body = await request.read()
    head = b"\n".join([request.method.encode(), request.path_qs.encode(), b""])
    if len(body) <= HASH_INLINE_BYTES:
        return _sha256(head, body)
    return await asyncio.to_thread(_sha256, head, body)


def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


#: Set on a route handler that authenticates its caller and honours ``Idempotency-Key`` itself
#: (the answers to offers, see ``api/answers.py``): the two middlewares below let it through.
SELF_AUTHENTICATING = "muster_self_authenticating"


def self_authenticating(handler: Handler) -> Handler:
    """Mark ``handler`` as doing its own authentication and idempotency (see above)."""
    setattr(handler, SELF_AUTHENTICATING, True)
    return handler


def _handles_itself(request: web.Request) -> bool:
    return getattr(request.match_info.handler, SELF_AUTHENTICATING, False)


def well_formed_key(key: str) -> bool:
    """Whether an ``Idempotency-Key`` has 1 to 200 characters (only such a key is claimed)."""
    return 1 <= len(key) <= 200


def check_key_length(key: str) -> None:
    """Refuse an ``Idempotency-Key`` outside 1 to 200 characters (422)."""
    if not well_formed_key(key):
        raise IdempotencyMismatch("Idempotency-Key must be 1 to 200 characters")


def replayed(claim: idempotency.Claimed, key: str, digest: str) -> web.Response:
    """The answer to a request whose key is already taken: the stored answer again, or the
    error saying the key was used for another request or that its request still runs."""
    if claim.request_hash != digest:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used for a different request", extra={"key": key}
        )
    if claim.status_code is None:
        raise RequestInProgress("a request with this Idempotency-Key is still running")
    return web.Response(
        status=claim.status_code,
        body=claim.body,
        content_type=claim.content_type.split(";")[0],
        headers={"Idempotent-Replayed": "true"},
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route outside the public ones needs a valid, unrevoked bearer token (in the
    ``Authorization`` header; for the browser-facing streams also ``?access_token=``).

    A POST with a well-formed ``Idempotency-Key`` has its key claimed in the same statement
    that checks the token (one round trip for both; see :func:`idempotency_middleware`)."""
    if (
        request.path.startswith(PUBLIC_PREFIXES)
        or request.method == "OPTIONS"
        or _handles_itself(request)
    ):
        return await handler(request)
    secret = bearer_secret(request)
    key = _idempotency_key(request)
    if key is not None and well_formed_key(key):
        digest = await request_digest(request)
        async with request.app[POOL].acquire() as con:
            found = await idempotency.authenticate_and_claim(
                con, secret, key, request.method, request.path, digest
            )
        if found is None:
            raise Unauthenticated("the token is unknown or revoked")
        request[PRINCIPAL], claimed = found
        request[_CLAIMED] = (digest, claimed)
        return await handler(request)
    async with request.app[POOL].acquire() as con:
        who = await tokens.authenticate(con, secret)
    if who is None:
        raise Unauthenticated("the token is unknown or revoked")
    request[PRINCIPAL] = who
    return await handler(request)


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A POST with ``Idempotency-Key`` runs once; a retry replays the stored answer."""
    key = _idempotency_key(request)
    if key is None or PRINCIPAL not in request or _handles_itself(request):
        return await handler(request)
    check_key_length(key)
    token_id = request[PRINCIPAL].token_id
    pool = request.app[POOL]
    pre = request.get(_CLAIMED)
    if pre is not None:
        digest, claim = pre
    else:
        digest = await request_digest(request)
        async with pool.acquire() as con:
            claim = await idempotency.claim(
                con, token_id, key, request.method, request.path, digest
            )
    if claim is not None:
        return replayed(claim, key, digest)
    try:
        response = await handler(request)
    except DomainError as exc:
        response = from_domain(exc, request)
    except BaseException:
        async with pool.acquire() as con:
            await idempotency.release(con, token_id, key)
        raise
    if isinstance(response, web.Response) and response.status < 500:
        answer = (
            token_id,
            key,
            response.status,
            response.body if isinstance(response.body, bytes) else b"",
            response.headers.get("Content-Type", "application/json"),
        )
        async with pool.acquire() as con:
            await idempotency.complete(con, *answer)
    else:
        async with pool.acquire() as con:
            await idempotency.release(con, token_id, key)
    return response


IMPORT_SUFFIX = ":import"


def body_limit(request: web.Request) -> int:
    """Bytes allowed in this request's body: the normal limit, or the larger one for imports."""
    settings = request.app[SETTINGS]
    if request.path.endswith(IMPORT_SUFFIX):
        return settings.max_import_bytes
    return settings.max_body_bytes


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversized body before reading it (``read_json`` checks chunked ones)."""
    limit = body_limit(request)
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the body has {length} bytes; the limit here is {limit}")
    return await handler(request)
