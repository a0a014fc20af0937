"""The public contract at the gateway: GET /api/openapi.json and the /api/docs page.

Through the gateway of the running stack: the merged document validates as OpenAPI 3.1, lists
exactly the method+paths of ROUTE_MAP (in the documented path form), and states each route's
access level and security as ROUTE_MAP enforces it. The merge rules themselves (aliases,
component-name clashes, error answers) are also checked on small hand-made service documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from gateway.docs import PACKAGED_ASSETS
from gateway.openapi import SECURITY_SCHEME, build_document, operation_id
from gateway.routes import GATEWAY, ROUTE_MAP, Access, Route, _r, pattern_params, template_path
from stockmanager.embedded import free_port
from tests.support.stack import Stack, extra_gateway

Json = dict[str, Any]


@pytest.fixture(scope="module")
def document(stack: Stack) -> Json:
    with stack.client() as client:
        response = client.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Json = response.json()
    return body


def _operations(document: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# ------------------------------------------------------------------------ the live document


def test_document_is_valid_openapi_3_1(document: Json) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    schemas = document["components"]["schemas"]
    for target in _refs(document):
        assert target.startswith("#/components/schemas/"), target
        assert target.removeprefix("#/components/schemas/") in schemas, target


def test_lists_exactly_the_route_map(document: Json) -> None:
    published = {(method, path) for method, path, _ in _operations(document)}
    expected = {(route.method, template_path(route.pattern)) for route in ROUTE_MAP}
    assert published == expected
    # The documented form of a typed parameter: `{id:int}` → `{id}` with an integer schema.
    for route in ROUTE_MAP:
        op = document["paths"][template_path(route.pattern)][route.method.lower()]
        path_params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        assert set(path_params) == {name for name, _ in pattern_params(route.pattern)}, route
        for name, kind in pattern_params(route.pattern):
            assert path_params[name]["required"] is True
            if kind == "int":
                assert path_params[name]["schema"]["type"] == "integer", route


def test_access_and_security_follow_the_route_map(document: Json) -> None:
    scheme = document["components"]["securitySchemes"][SECURITY_SCHEME]
    assert scheme == {**scheme, "type": "apiKey", "in": "cookie", "name": "session"}
    for route in ROUTE_MAP:
        op = document["paths"][template_path(route.pattern)][route.method.lower()]
        assert op["x-access"] == str(route.access), route
        assert f"Access: {route.access}" in op["description"], route
        if route.access is Access.PUBLIC:
            assert "security" not in op, route
        else:
            assert op["security"] == [{SECURITY_SCHEME: []}], route
            assert op["responses"]["401"]["content"]["application/json"]["schema"]
        if route.access in (Access.ADMIN, Access.ROOT):
            assert "403" in op["responses"], route
        if route.target != GATEWAY:
            assert {"503", "504"} <= set(op["responses"]), route
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))


def test_gateway_routes_are_described_by_their_models(document: Json) -> None:
    login = document["paths"]["/api/login"]["post"]
    body = login["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/LoginRequest"}
    assert {"400", "401", "429"} <= set(login["responses"])
    assert "Retry-After" in login["responses"]["429"]["headers"]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "code"]
    assert login["tags"] == ["session"]
    alias = document["paths"]["/api/api/settings/profile"]["put"]
    target = document["paths"]["/api/settings/profile"]["put"]
    assert alias["operationId"] != target["operationId"]
    assert alias.get("requestBody") == target.get("requestBody")
    assert "Alias of `PUT /api/settings/profile`" in alias["description"]


def test_every_tag_is_declared(document: Json) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    used = {tag for _, _, op in _operations(document) for tag in op["tags"]}
    assert set(declared) == used


def test_servers_name_the_gateway_the_client_used(stack: Stack, document: Json) -> None:
    assert document["servers"][0]["url"] == stack.base_url


# --------------------------------------------------------------------------------- the page


def test_docs_page_is_html_and_its_assets_load_from_the_gateway(stack: Stack) -> None:
    with stack.client() as client:
        page = client.get("/api/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        # Nothing is loaded from elsewhere: every src/href is one of the gateway's paths.
        links = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert links, html
        assert all(link.startswith("/api/docs/") for link in links), links
        assert "http://" not in html and "https://" not in html
        for link in links:
            asset = client.get(link)
            assert asset.status_code == 200, link
            assert len(asset.content) > 0
        for name, (_, media_type) in PACKAGED_ASSETS.items():
            asset = client.get(f"/api/docs/{name}")
            assert asset.headers["content-type"] == media_type
        assert "/api/openapi.json" in client.get("/api/docs/init.js").text
        missing = client.get("/api/docs/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"


# ----------------------------------------------------------------- a service that is down


@pytest.fixture(scope="module")
def gateway_without_audit(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second gateway on the same stack, whose audit service URL has nothing listening."""
    env = {**stack.env, "STOCKMANAGER_AUDIT_URLS": f"http://127.0.0.1:{free_port()}"}
    with extra_gateway(env, Path(tmp_path_factory.mktemp("no-audit")) / "gateway.log") as url:
        yield url


def test_unreachable_service_is_503_not_a_partial_document(gateway_without_audit: str) -> None:
    with httpx.Client(base_url=gateway_without_audit, timeout=30) as client:
        response = client.get("/api/openapi.json")
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        # The page itself does not need the services.
        assert client.get("/api/docs").status_code == 200


# --------------------------------------------------------------------------- merge rules


def _service_doc(paths: Json, schemas: Json) -> Json:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def _get(ref: str, **extra: Any) -> Json:
    return {
        "summary": "x",
        "responses": {
            "200": {
                "description": "ok",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}
                },
            }
        },
        **extra,
    }


def test_merge_dedupes_identical_and_prefixes_clashing_components() -> None:
    item_a = {"type": "object", "properties": {"a": {"type": "integer"}}, "title": "Item"}
    item_b = {"type": "object", "properties": {"b": {"type": "string"}}, "title": "Item"}
    shared = {"type": "object", "properties": {"n": {"type": "integer"}}, "title": "Page"}
    wrapper = {
        "type": "object",
        "properties": {"item": {"$ref": "#/components/schemas/Item"}},
        "title": "Wrapper",
    }
    error_clash = {"type": "object", "properties": {"detail": {"type": "string"}}}
    docs = {
        "products": _service_doc(
            {
                "/api/products/{product_id}": {
                    "get": _get(
                        "Wrapper",
                        parameters=[
                            {
                                "name": "product_id",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "integer"},
                            }
                        ],
                    )
                },
                "/api/products": {"get": _get("Page")},
            },
            {"Item": item_a, "Wrapper": wrapper, "Page": shared, "Unused": {"type": "object"}},
        ),
        "sales": _service_doc(
            {"/api/sales": {"get": _get("Item")}, "/api/sales/bulk": {"post": _get("Error")}},
            {"Item": item_b, "Page": shared, "Error": error_clash},
        ),
    }
    routes = (
        _r("GET", "/api/products/{id:int}", "products", Access.USER),
        _r("GET", "/api/products", "products", Access.USER),
        _r("GET", "/api/sales", "sales", Access.USER),
        _r("POST", "/api/sales/bulk", "sales", Access.USER),
        _r("GET", "/api/health", GATEWAY, Access.PUBLIC),
    )
    merged = build_document(routes, docs, cookie_name="sid")
    schemas = merged["components"]["schemas"]
    # Identical `Page` kept once; different `Item`s prefixed; `Error` is the gateway's own name.
    assert schemas["Page"] == shared
    assert "Item" not in schemas
    assert schemas["products.Item"] == item_a and schemas["sales.Item"] == item_b
    # Wrapper refers to the renamed Item.
    assert schemas["Wrapper"]["properties"]["item"] == {
        "$ref": "#/components/schemas/products.Item"
    }
    assert schemas["sales.Error"] == error_clash
    assert schemas["Error"]["required"] == ["error", "code"]
    assert "Unused" not in schemas
    sales_bulk = merged["paths"]["/api/sales/bulk"]["post"]
    assert sales_bulk["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/sales.Error"
    }
    one = merged["paths"]["/api/products/{id}"]["get"]
    assert [p["name"] for p in one["parameters"]] == ["id"]
    assert one["operationId"] == operation_id("GET", "/api/products/{id}")
    assert merged["components"]["securitySchemes"][SECURITY_SCHEME]["name"] == "sid"
    validate({**merged, "servers": [{"url": "http://localhost"}]})


def test_merge_publishes_a_route_its_service_does_not_describe() -> None:
    routes: tuple[Route, ...] = (_r("DELETE", "/api/products/{id:int}", "products", Access.ADMIN),)
    merged = build_document(routes, {"products": _service_doc({}, {})}, cookie_name="session")
    op = merged["paths"]["/api/products/{id}"]["delete"]
    assert op["x-access"] == "admin"
    assert {"401", "403", "404", "503", "504"} <= set(op["responses"])
    assert op["parameters"][0]["schema"]["type"] == "integer"


def test_every_gateway_route_has_a_handler_and_a_description() -> None:
    from typing import get_args

    from gateway.debug import COMMANDS
    from gateway.dispatch import LOCAL_HANDLERS
    from gateway.openapi import GATEWAY_OPERATIONS
    from gateway.schemas import DebugCommandName

    for route in ROUTE_MAP:
        if route.target == GATEWAY:
            key = (route.method, route.upstream_path or route.pattern)
            assert key in LOCAL_HANDLERS, route
            assert key in GATEWAY_OPERATIONS, route
    assert set(GATEWAY_OPERATIONS) <= set(LOCAL_HANDLERS)
    # The documented (and validated) command names are exactly the ones that run.
    assert set(get_args(DebugCommandName)) == set(COMMANDS)


def test_merge_drops_fastapis_automatic_422_but_keeps_a_declared_one() -> None:
    validation = {"$ref": "#/components/schemas/HTTPValidationError"}
    declared = {"$ref": "#/components/schemas/Problem"}

    def op(schema: Json) -> Json:
        answer = {"description": "x", "content": {"application/json": {"schema": schema}}}
        return {"responses": {"200": {"description": "ok"}, "422": answer}}

    docs = {
        "sales": _service_doc(
            {"/api/sales": {"get": op(validation), "post": op(declared)}},
            {
                "HTTPValidationError": {"type": "object"},
                "Problem": {"type": "object", "properties": {"error": {"type": "string"}}},
            },
        )
    }
    routes = (
        _r("GET", "/api/sales", "sales", Access.USER),
        _r("POST", "/api/sales", "sales", Access.USER),
    )
    merged = build_document(routes, docs, cookie_name="session")
    assert "422" not in merged["paths"]["/api/sales"]["get"]["responses"]
    assert "422" in merged["paths"]["/api/sales"]["post"]["responses"]
    assert "HTTPValidationError" not in merged["components"]["schemas"]


def test_servers_follow_a_trusted_proxys_forwarded_origin() -> None:
    import ipaddress
    from types import SimpleNamespace

    from starlette.requests import Request

    from gateway.openapi import public_origin

    def ctx(peer: str, trusted: list[str]) -> Any:
        headers = [
            (b"host", b"gateway:5000"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"stock.example.com"),
        ]
        scope = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/api/openapi.json",
            "headers": headers,
            "client": (peer, 40000),
            "server": ("gateway", 5000),
        }
        networks = [ipaddress.ip_network(cidr) for cidr in trusted]
        return SimpleNamespace(
            request=Request(scope), runtime=SimpleNamespace(trusted_proxies=networks)
        )

    assert public_origin(ctx("10.1.2.3", ["10.0.0.0/8"])) == "https://stock.example.com"
    # Anyone else's forwarded headers are not believed.
    assert public_origin(ctx("192.0.2.7", ["10.0.0.0/8"])) == "http://gateway:5000"
    assert public_origin(ctx("10.1.2.3", [])) == "http://gateway:5000"
