"""Endpoint registry: the models that validate requests also generate ``/openapi.json``."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from dispatch.validation import M, parse

ViewFn = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    """One documented endpoint."""

    method: str
    path: str
    summary: str
    tag: str
    roles: tuple[str, ...]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    status: int
    body_media: tuple[str, ...] = ("application/json",)
    public: bool = False
    responses: dict[int, str] = field(default_factory=dict)


class Api:
    """Collects routes and their documentation in one place."""

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.operations: list[Operation] = []

    def endpoint(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        roles: tuple[str, ...] = (),
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        status: int = 200,
        body_media: tuple[str, ...] = ("application/json",),
        public: bool = False,
        responses: dict[int, str] | None = None,
    ) -> Callable[[ViewFn], ViewFn]:
        """Register a view under ``method path`` and document it."""

        def deco(fn: ViewFn) -> ViewFn:
            self.routes.route(method, path)(fn)
            self.operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=summary,
                    tag=tag,
                    roles=roles,
                    body=body,
                    query=query,
                    status=status,
                    body_media=body_media,
                    public=public,
                    responses=responses or {},
                )
            )
            return fn

        return deco


def query_params(request: web.Request, model: type[M]) -> M:
    """Validate the query string with ``model`` (lax types: query values are strings)."""
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    return parse(model, data, what="query string")


_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?}")


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi(apis: list[Api], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for every registered operation."""
    components: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "loc": {"type": "string"},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            },
            "required": ["type", "title", "status"],
        }
    }
    paths: dict[str, Any] = {}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for api in apis:
        for op in api.operations:
            oa_path = _PARAM.sub(r"{\1}", op.path)
            params: list[dict[str, Any]] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in _PARAM.findall(op.path)
            ]
            if op.query is not None:
                qs = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(qs.pop("$defs", {}))
                required = set(qs.get("required", []))
                for name, prop in qs.get("properties", {}).items():
                    params.append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if op.method == "POST" and not op.public:
                params.append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "Retry-safe POST: the same key replays the first answer.",
                    }
                )
            responses: dict[str, Any] = {
                str(op.status): {"description": "Success"},
                "4XX": {"description": "Client error", "content": problem},
            }
            for code, text in op.responses.items():
                responses[str(code)] = {"description": text, "content": problem}
            entry: dict[str, Any] = {
                "summary": op.summary,
                "tags": [op.tag],
                "operationId": f"{op.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', oa_path.lower()).strip('_')}",
                "parameters": params,
                "responses": responses,
            }
            if op.roles:
                entry["description"] = "Roles: " + ", ".join(op.roles)
            if not op.public:
                entry["security"] = [{"bearer": []}]
            if op.body is not None:
                ref = _schema(op.body, components)
                entry["requestBody"] = {
                    "required": True,
                    "content": {media: {"schema": ref} for media in op.body_media},
                }
            paths.setdefault(oa_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
