"""Small helpers shared by the views: bodies, JSON answers, pagination, preconditions."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any

from aiohttp import web
from pydantic import ConfigDict, Field

from api.keys import PRINCIPAL
from dispatch.access import Principal
from dispatch.errors import (
    FieldError,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
    ValidationFailed,
)
from dispatch.validation import M, parse_json
from dispatch.validation import Strict as _Strict


def _default(obj: object) -> Any:
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any) -> str:
    """JSON text with ISO dates."""
    return json.dumps(data, default=_default, separators=(",", ":"))


def json_response(
    data: Any,
    *,
    status: int = 200,
    etag_version: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON answer; ``etag_version`` sets a strong ETag from the object's version."""
    h = dict(headers or {})
    if etag_version is not None:
        h["ETag"] = f'"{etag_version}"'
    return web.Response(text=dumps(data), status=status, content_type="application/json", headers=h)


def principal(request: web.Request) -> Principal:
    """The authenticated caller (set by the auth middleware)."""
    return request[PRINCIPAL]


async def read_json(request: web.Request, model: type[M]) -> M:
    """Validate a JSON body with ``model``; wrong media type → 415, bad JSON/fields → 422."""
    if request.content_type not in ("application/json", "application/merge-patch+json"):
        raise UnsupportedMediaType(
            f"expected application/json, got {request.content_type or 'nothing'}"
        )
    raw = await read_body(request)
    return parse_json(model, raw)


async def read_body(request: web.Request) -> bytes:
    """The whole body, refused with 413 past this route's limit (also for chunked bodies)."""
    from api.middleware import body_limit

    raw = await request.read()
    limit = body_limit(request)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
    return raw


def if_match(request: web.Request) -> int | None:
    """The version named by an ``If-Match: "N"`` header, if any."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    tag = raw.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    tag = tag.strip('"')
    if not tag.isdigit():
        raise PreconditionFailed(f"If-Match must name a version like '\"3\"', got {raw!r}")
    return int(tag)


class ListQuery(_Strict):
    """Common list parameters (lax types: they come from the query string)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=500)


def encode_cursor(key: Any) -> str:
    """Opaque cursor for keyset pagination."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, of: type[Any] | None = None) -> Any:
    """The key inside a cursor, which must be an ``of`` when given (e.g. the ``str`` id of a
    list ordered by id); a malformed one is a 422 on ``cursor``."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise _malformed_cursor() from None
    if of is not None and key is not None and not isinstance(key, of):
        raise _malformed_cursor()
    return key


def _malformed_cursor() -> ValidationFailed:
    return ValidationFailed(
        "malformed cursor", errors=[FieldError("/cursor", "not a cursor from this API")]
    )


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    """``{"items": [...], "next": CURSOR|null}`` from ``limit + 1`` fetched rows."""
    more = len(items) > limit
    items = items[:limit]
    nxt = encode_cursor(items[-1][key]) if more and items else None
    return {"items": items, "next": nxt}


def comma_list(value: Any) -> Any:
    """For a list query parameter: ``?status=a,b`` and ``?status=a&status=b`` both mean
    ``[a, b]`` (use as ``Annotated[list[X], BeforeValidator(comma_list)]``)."""
    values = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for v in values:
        if isinstance(v, str):
            out.extend(p.strip() for p in v.split(",") if p.strip())
        else:
            out.append(v)
    return out
