"""Operational endpoints and the HTTP edge: health, readiness, metrics, OpenAPI, docs, errors."""

from __future__ import annotations

import html
import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from api.app import all_apis
from api.keys import POOL
from dispatch.jurisdictions import JurisdictionCreate
from tests.conftest import bearer

PROBLEM = "application/problem+json"


def _assert_problem(body: dict[str, Any], status: int) -> None:
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"]


# ------------------------------------------------------------------------- health and readiness


async def test_healthz_and_readyz_answer_without_a_token(client: Any) -> None:
    r = await client.get("/healthz")
    assert r.status == 200 and await r.json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status == 200 and await r.json() == {"status": "ready"}


async def test_readyz_is_a_503_problem_when_the_database_is_gone(client: Any) -> None:
    await client.app[POOL].close()
    r = await client.get("/readyz")
    assert r.status == 503
    assert r.content_type == PROBLEM
    body = await r.json()
    _assert_problem(body, 503)
    assert body["type"].endswith("/not-ready") and "database" in body["detail"]
    # Liveness does not depend on the database: the process itself is fine.
    assert (await client.get("/healthz")).status == 200


# ------------------------------------------------------------------------------------ metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_and_time_requests_by_route_template(
    client: Any, admin_token: str
) -> None:
    h = bearer(admin_token)
    await client.post(
        "/v1/jurisdictions", json={"code": "sh", "kind": "city", "name": "Shanghai"}, headers=h
    )
    for _ in range(2):
        assert (await client.get("/v1/jurisdictions", headers=h)).status == 200
    assert (await client.get("/v1/jurisdictions/sh", headers=h)).status == 200
    assert (await client.get("/v1/jurisdictions/nowhere", headers=h)).status == 404
    assert (await client.get("/no/such/route/12345", headers=h)).status == 404

    r = await client.get("/metrics")
    assert r.status == 200
    assert r.content_type == "text/plain"
    text = await r.text()
    samples = _samples(text)

    def requests(route: str, status: str) -> float:
        key = (
            "muster_http_requests_total",
            (("method", "GET"), ("route", route), ("status", status)),
        )
        return samples.get(key, 0.0)

    assert requests("/v1/jurisdictions", "200") == 2
    # Path parameters are folded into the template, so label cardinality stays bounded.
    assert requests("/v1/jurisdictions/{code}", "200") == 1
    assert requests("/v1/jurisdictions/{code}", "404") == 1
    assert requests("unmatched", "404") == 1
    assert "/no/such/route/12345" not in text

    labels = (("method", "GET"), ("route", "/v1/jurisdictions"))
    count = samples[("muster_http_request_duration_seconds_count", labels)]
    total = samples[("muster_http_request_duration_seconds_sum", labels)]
    inf_labels = tuple(sorted((*labels, ("le", "+Inf"))))
    inf = samples[("muster_http_request_duration_seconds_bucket", inf_labels)]
    assert count == inf == 2
    assert 0 < total < 10


# ------------------------------------------------------------------------------ OpenAPI + docs


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for v in node.values():
            found |= _refs(v)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _routed(app: Any) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        out.add((route.method.lower(), route.resource.canonical))
    return out


async def test_openapi_is_a_3_1_document_describing_every_route(client: Any) -> None:
    r = await client.get("/openapi.json")
    assert r.status == 200
    spec = await r.json()
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}

    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == _routed(client.app)

    op_ids = []
    for path, ops in spec["paths"].items():
        assert path.startswith("/")
        for method, op in ops.items():
            assert method in ("get", "post", "put", "patch", "delete")
            op_ids.append(op["operationId"])
            assert op["summary"] and op["tags"] and op["responses"]
            assert all(re.fullmatch(r"[1-5](\d\d|XX)", code) for code in op["responses"])
            for p in op["parameters"]:
                assert p["in"] in ("path", "query", "header") and "schema" in p
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path))
            public = path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
            assert ("security" in op) is not public
    assert len(op_ids) == len(set(op_ids))

    # Every body schema reference resolves.
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec["components"]) | _refs(
        [op.get("requestBody") for ops in spec["paths"].values() for op in ops.values()]
    ):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref


async def test_openapi_query_parameter_references_resolve(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec["paths"]):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


async def test_openapi_request_bodies_are_the_validating_models(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    template = "#/components/schemas/{model}"

    expected = JurisdictionCreate.model_json_schema(ref_template=template)
    defs = expected.pop("$defs", {})
    assert schemas["JurisdictionCreate"] == expected
    for name, sub in defs.items():
        assert schemas[name] == sub
    # What that means for clients: the same strictness the server applies.
    assert schemas["JurisdictionCreate"]["additionalProperties"] is False
    assert set(schemas["JurisdictionCreate"]["required"]) == {"code", "kind", "name"}

    post = spec["paths"]["/v1/jurisdictions"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/JurisdictionCreate"}

    # And for every operation with a body, whichever module registered it.
    for api in all_apis():
        for op in api.operations:
            if op.body is None:
                continue
            model_schema = op.body.model_json_schema(ref_template=template)
            model_schema.pop("$defs", None)
            assert schemas[op.body.__name__] == model_schema, op.path
            path = re.sub(r"{(\w+)(?::[^}]*)?}", r"{\1}", op.path)
            content = spec["paths"][path][op.method.lower()]["requestBody"]["content"]
            assert set(content) == set(op.body_media)
            if op.query is not None:
                names = {
                    p["name"]
                    for p in spec["paths"][path][op.method.lower()]["parameters"]
                    if p["in"] == "query"
                }
                assert names == set(op.query.model_json_schema()["properties"])


async def test_docs_page_lists_every_path(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    r = await client.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    for path, ops in spec["paths"].items():
        assert html.escape(path) in page, path
        for method in ops:
            assert method.upper() in page
    assert "JurisdictionCreate" in page


# --------------------------------------------------------------------------------- HTTP errors


async def test_unknown_route_is_a_404_problem(client: Any, admin_token: str) -> None:
    r = await client.get("/v1/no-such-thing", headers=bearer(admin_token))
    assert r.status == 404 and r.content_type == PROBLEM
    body = await r.json()
    _assert_problem(body, 404)
    assert body["instance"] == "/v1/no-such-thing"


async def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(
    client: Any, admin_token: str
) -> None:
    r = await client.put("/v1/jurisdictions", json={}, headers=bearer(admin_token))
    assert r.status == 405 and r.content_type == PROBLEM
    _assert_problem(await r.json(), 405)
    assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_wrong_content_type_is_a_415_problem(client: Any, admin_token: str) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = await client.post(
            "/v1/jurisdictions",
            data=b'{"code": "sh", "kind": "city", "name": "Shanghai"}',
            headers=bearer(admin_token) | {"Content-Type": content_type},
        )
        assert r.status == 415, content_type
        assert r.content_type == PROBLEM
        _assert_problem(await r.json(), 415)
    r = await client.get("/v1/jurisdictions", headers=bearer(admin_token))
    assert (await r.json())["items"] == []


async def test_request_id_is_echoed_or_made_up(client: Any, admin_token: str) -> None:
    r = await client.get("/healthz", headers={"X-Request-Id": "abc-123.x"})
    assert r.headers["X-Request-Id"] == "abc-123.x"
    # Also on errors, where it matters most.
    r = await client.get(
        "/v1/no-such-thing", headers=bearer(admin_token) | {"X-Request-Id": "err-42"}
    )
    assert r.status == 404 and r.headers["X-Request-Id"] == "err-42"
    r = await client.get("/v1/jurisdictions", headers={"X-Request-Id": "no-token-7"})
    assert r.status == 401 and r.headers["X-Request-Id"] == "no-token-7"
    # A missing or unsafe id (spaces, too long) is replaced by a fresh one.
    seen = set()
    for given in (None, "has spaces", "x" * 200):
        headers = {} if given is None else {"X-Request-Id": given}
        r = await client.get("/healthz", headers=headers)
        rid = r.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
        seen.add(rid)
    assert len(seen) == 3
