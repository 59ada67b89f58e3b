"""Liveness, readiness, metrics and the API description."""

from __future__ import annotations

import html
import json

from aiohttp import web

from api.keys import OPENAPI, POOL
from api.metrics import metrics_view
from api.problems import problem_response
from api.spec import Api

api = Api()


@api.endpoint("GET", "/healthz", summary="Liveness: the process answers", tag="ops", public=True)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@api.endpoint(
    "GET",
    "/readyz",
    summary="Readiness: the database answers",
    tag="ops",
    public=True,
    responses={503: "Database unreachable"},
)
async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[POOL].acquire(timeout=2) as con:
            await con.fetchval("SELECT 1", timeout=2)
    except Exception as exc:
        return problem_response(503, "not-ready", "Not ready", f"database: {type(exc).__name__}")
    return web.json_response({"status": "ready"})


api.endpoint("GET", "/metrics", summary="Prometheus metrics", tag="ops", public=True)(metrics_view)


@api.endpoint("GET", "/openapi.json", summary="This API as OpenAPI 3.1", tag="ops", public=True)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


@api.endpoint("GET", "/docs", summary="Human-readable API documentation", tag="ops", public=True)
async def docs(request: web.Request) -> web.Response:
    spec = request.app[OPENAPI]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Muster API</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}"
        ".m{display:inline-block;min-width:4.5rem;font-weight:bold}"
        "details{margin:.2rem 0 .8rem 1rem}</style></head><body>",
        f"<h1>{html.escape(spec['info']['title'])} <small>{html.escape(spec['info']['version'])}</small></h1>",
        "<p>Send <code>Authorization: Bearer &lt;token&gt;</code>. Errors are "
        "<code>application/problem+json</code> (RFC 9457). The machine-readable description is "
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, object]]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append((method, path, op))
    for tag, ops in sorted(by_tag.items()):
        parts.append(f"<h2>{html.escape(tag)}</h2>")
        for method, path, op in ops:
            parts.append(
                f"<div><span class='m'>{method.upper()}</span><code>{html.escape(path)}</code> — "
                f"{html.escape(str(op['summary']))} <em>{html.escape(str(op.get('description', '')))}</em></div>"
            )
            body = op.get("requestBody")
            if body:
                ref = next(iter(body["content"].values()))["schema"]["$ref"].split("/")[-1]  # type: ignore[index]
                schema = spec["components"]["schemas"][ref]
                parts.append(
                    f"<details><summary>body: {html.escape(ref)}</summary><pre>"
                    f"{html.escape(json.dumps(schema, indent=2))}</pre></details>"
                )
    parts.append("</body></html>")
    return web.Response(text="".join(parts), content_type="text/html")
