"""The sales contract: real responses match the declared models, malformed input is a 400.

Every request goes through the gateway; each response is checked against what the route
declares (its `response_model` for a success, `ErrorBody` and a documented status otherwise).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.sales.api import router
from stockmanager.contracts.validation import ErrorBody
from stockmanager.db import Database
from tests.sales.support import Account, assert_error, create_products
from tests.support.stack import Stack

# Statuses the gateway answers itself for any route (ROUTE_MAP access, limits, upstream).
GATEWAY_STATUSES = {401, 403, 413, 415, 429, 502, 503, 504}


def route_of(method: str, template: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == template and method in route.methods:
            return route
    raise AssertionError(f"no route {method} {template}")


def conforms(method: str, template: str, response: httpx.Response) -> Any:
    """The response's JSON, after checking it against the route's declared contract."""
    route = route_of(method, template)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if response.status_code < 300:
        assert response.status_code == route.status_code or (
            route.status_code is None and response.status_code == 200
        )
        assert route.response_model is not None
        route.response_model.model_validate(body)
    else:
        assert response.status_code in set(route.responses) | GATEWAY_STATUSES, response.text
        ErrorBody.model_validate(body)
    return body


# ------------------------------------------------------------------------ declared contract


def test_every_route_is_documented() -> None:
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    operations = [op for item in paths.values() for op in item.values()]
    assert len(operations) == 6
    for route in router.routes:
        assert isinstance(route, APIRoute)
        assert route.response_model is not None, route.path
        assert route.summary, route.path
        assert 400 in route.responses, route.path
    for path in ("/api/sales", "/api/sales/bulk"):
        post = paths[path]["post"]
        assert "201" in post["responses"] and "422" in post["responses"]
        (header,) = [p for p in post["parameters"] if p["in"] == "header"]
        assert header["name"] == "Idempotency-Key" and not header["required"]
        assert "visible ASCII" in header["description"]
    listing = paths["/api/sales"]["get"]["parameters"]
    assert [p["name"] for p in listing] == ["from", "to", "product", "vendedor", "page", "limit"]
    assert all(p["in"] == "query" and p["description"] for p in listing)


def test_the_gateway_publishes_the_sales_contract(stack: Stack) -> None:
    with stack.client() as client:
        document = client.get("/api/openapi.json").json()
    paths = document["paths"]
    for path in ("/api/sales", "/api/sales/bulk"):
        post = paths[path]["post"]
        assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
        assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
        assert post["requestBody"]["required"] is True
    listing = paths["/api/sales"]["get"]
    assert {p["name"] for p in listing["parameters"]} == set(FILTERS)
    assert "422" not in listing["responses"]  # validation failures are 400s
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].rsplit("/", 1)[1] in ("SalePage", "sales.SalePage")
    assert "404" in paths["/api/sales/{id}/edit"]["get"]["responses"]


# -------------------------------------------------------------------- responses match models


async def test_real_responses_match_the_declared_models(
    stack: Stack, db: Database, seller: Account, admin: Account
) -> None:
    barcode = str(uuid.uuid4().int)[:13]
    a, b = await create_products(
        db,
        {"barcode": barcode, "price": "1.10", "quantity": 50},
        {"price": "0.05", "quantity": 50},
    )
    key = {"Idempotency-Key": str(uuid.uuid4())}
    payload = {"items": [{"item_id": a, "quantity": 2}, {"item_id": b, "quantity": "3"}]}
    created = conforms(
        "POST", "/api/sales/bulk", seller.client.post("/api/sales/bulk", json=payload, headers=key)
    )
    replay = seller.client.post("/api/sales/bulk", json=payload, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    assert conforms("POST", "/api/sales/bulk", replay) == created
    sale_id = created["sale_id"]

    by_barcode = seller.client.post(
        "/api/sales", json={"barcode": int(barcode), "quantity": 1.0, "payment_method": None}
    )
    assert conforms("POST", "/api/sales", by_barcode)["total"] == 1.1

    listing = conforms("GET", "/api/sales", seller.client.get("/api/sales"))
    assert listing["total"] == 2 and listing["data"][1]["id"] == sale_id
    detail = conforms("GET", "/api/sales/{sale_id}", seller.client.get(f"/api/sales/{sale_id}"))
    assert detail["payment_method"] == "Efectivo"
    view = conforms(
        "GET", "/api/sales/{sale_id}/edit", admin.client.get(f"/api/sales/{sale_id}/edit")
    )
    assert [line["item_id"] for line in view["items"]] == [a, b]
    edited = admin.client.put(
        f"/api/sales/{sale_id}",
        json={"items": [{"item_id": a, "quantity": 1}], "payment_method": " Tarjeta "},
    )
    conforms("PUT", "/api/sales/{sale_id}", edited)
    assert seller.client.get(f"/api/sales/{sale_id}").json()["payment_method"] == "Tarjeta"

    # Errors are documented statuses with the error body.
    conforms("GET", "/api/sales/{sale_id}", seller.client.get(f"/api/sales/{sale_id + 10**6}"))
    conforms(
        "PUT",
        "/api/sales/{sale_id}",
        admin.client.put(f"/api/sales/{sale_id + 10**6}", json={"items": [[1]]}),
    )
    conforms("POST", "/api/sales", seller.client.post("/api/sales", json={"barcode": "zz"}))


# --------------------------------------------------------------------- query: 400 or fallback

FILTERS = ["from", "to", "product", "vendedor", "page", "limit"]


@pytest.mark.parametrize("name", FILTERS)
def test_nul_in_any_query_parameter_is_400(stack: Stack, seller: Account, name: str) -> None:
    response = seller.client.get(f"/api/sales?{name}=a%00b")
    assert_error(response, 400, "Parámetros inválidos: El texto contiene caracteres no permitidos")
    conforms("GET", "/api/sales", response)


BAD_DATES = [
    "yesterday",
    "2026-02-30",
    "2026-13-01",
    "0001-01-01T00:00:00+14:00",  # before the first instant a datetime holds
    "%ff%fe",  # not UTF-8
    "2026-01-01%20OR%201=1",
]


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name in ("from", "to") for value in BAD_DATES]
    + [
        ("to", "9999-12-31"),  # the end of that day does not exist
        ("to", "9999-12-31T23:59:59.999999"),  # nor the instant after it
    ],
)
def test_garbage_dates_are_400(stack: Stack, seller: Account, name: str, value: str) -> None:
    response = seller.client.get(f"/api/sales?{name}={value}")
    assert_error(response, 400, "Fecha inválida: use YYYY-MM-DD")


@pytest.mark.parametrize("value", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00-12:00"])
def test_extreme_but_valid_dates_are_accepted(stack: Stack, seller: Account, value: str) -> None:
    conforms("GET", "/api/sales", seller.client.get("/api/sales", params={"from": value}))


@pytest.mark.parametrize(
    ("query", "page", "limit"),
    [
        ("page=abc&limit=xyz", 1, 10),
        ("page=0&limit=0", 1, 1),
        ("page=-3&limit=-3", 1, 1),
        ("page=1.5&limit=2e1", 1, 10),
        ("page=&limit=", 1, 10),
        ("page=%ff&limit=%ff", 1, 10),
        (f"page={'9' * 30}&limit={'9' * 30}", 10**10, 100),
        (f"page={'9' * 5000}&limit={'9' * 5000}", 1, 10),
        ("page=2&page=x&limit=5", 1, 5),  # the last value counts, as before
    ],
)
def test_bad_paging_falls_back(
    stack: Stack, seller: Account, query: str, page: int, limit: int
) -> None:
    body = conforms("GET", "/api/sales", seller.client.get(f"/api/sales?{query}"))
    assert (body["page"], body["limit"]) == (page, limit)


@pytest.mark.parametrize("value", ["%ff", "%25%5F%5C", "x" * 500, "%E2%80%8B", "'%3B--"])
@pytest.mark.parametrize("name", ["product", "vendedor"])
def test_odd_text_filters_find_nothing(
    stack: Stack, seller: Account, name: str, value: str
) -> None:
    body = conforms("GET", "/api/sales", seller.client.get(f"/api/sales?{name}={value}"))
    assert (body["data"], body["total"]) == ([], 0)


@pytest.mark.parametrize("template", ["/api/sales/{id}", "/api/sales/{id}/edit"])
@pytest.mark.parametrize("sale_id", ["0", "9" * 18, "9" * 40, "-1", "abc", "1.5"])
def test_odd_sale_ids_are_not_found_or_400(
    stack: Stack, admin: Account, template: str, sale_id: str
) -> None:
    response = admin.client.get(template.format(id=sale_id))
    assert response.status_code in (400, 404), response.text
    assert_error(response, response.status_code)


# ----------------------------------------------------------------------- bodies: always a 400

BAD_BODIES: list[tuple[str, str, Any, str]] = [
    # (method, path, body, message)
    ("POST", "/api/sales", b"", "Se requiere un cuerpo JSON"),
    ("POST", "/api/sales", b"[]", "El cuerpo de la petición debe ser un objeto JSON"),
    ("POST", "/api/sales", b'"x"', "El cuerpo de la petición debe ser un objeto JSON"),
    ("POST", "/api/sales", b"\xff{}", "El cuerpo de la petición debe ser un objeto JSON válido"),
    ("POST", "/api/sales", {"barcode": None, "quantity": 1}, "Faltan campos requeridos"),
    ("POST", "/api/sales", {"barcode": [], "quantity": 1}, "Código de barras inválido"),
    ("POST", "/api/sales", {"barcode": 1.5, "quantity": 1}, "Código de barras inválido"),
    ("POST", "/api/sales", {"barcode": "x" * 65, "quantity": 1}, "Código de barras inválido"),
    ("POST", "/api/sales", {"barcode": "a\u0000", "quantity": 1}, None),
    ("POST", "/api/sales", {"barcode": "1", "quantity": None}, "Cantidad inválida"),
    ("POST", "/api/sales", {"barcode": "1", "quantity": 10**30}, "Cantidad inválida"),
    ("POST", "/api/sales", {"barcode": "1", "quantity": {"n": 1}}, "Cantidad inválida"),
    (
        "POST",
        "/api/sales",
        {"barcode": "1", "quantity": 1, "payment_method": 5},
        "Método de pago inválido",
    ),
    (
        "POST",
        "/api/sales",
        {"barcode": "1", "quantity": 1, "payment_method": "  "},
        "Método de pago inválido",
    ),
    # The first failure in upstream's order wins.
    ("POST", "/api/sales", {"barcode": [], "quantity": "x"}, "Código de barras inválido"),
    ("POST", "/api/sales/bulk", b"", "Se requiere un cuerpo JSON"),
    ("POST", "/api/sales/bulk", b"[{}]", "El cuerpo de la petición debe ser un objeto JSON"),
    ("POST", "/api/sales/bulk", {"items": None}, "Formato inválido: items[] requerido"),
    ("POST", "/api/sales/bulk", {"items": {}}, "Formato inválido: items[] requerido"),
    ("POST", "/api/sales/bulk", {"items": [[1, 2]]}, "item_id/cantidad inválidos en índice 0"),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [{"item_id": 10**30, "quantity": 1}]},
        "item_id/cantidad inválidos en índice 0",
    ),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [{"item_id": 1, "quantity": 1}, {"item_id": 1, "quantity": 2**31 - 1}]},
        "item_id/cantidad inválidos en índice 1",
    ),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [{"item_id": 1, "quantity": 1}] * 501},
        "Demasiados productos en una venta (máximo 500)",
    ),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [None] * 501, "payment_method": 1},
        "Demasiados productos en una venta (máximo 500)",
    ),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [None], "payment_method": 1},
        "item_id/cantidad inválidos en índice 0",
    ),
    (
        "POST",
        "/api/sales/bulk",
        {"items": [{"item_id": 1, "quantity": 1}], "payment_method": ["Efectivo"]},
        "Método de pago inválido",
    ),
    ("PUT", "/api/sales/1", b"", "Se requiere un cuerpo JSON"),
    ("PUT", "/api/sales/1", b"[]", "El cuerpo de la petición debe ser un objeto JSON"),
    ("PUT", "/api/sales/1", {"items": "x"}, "Items inválidos"),
    (
        "PUT",
        "/api/sales/1",
        {"items": [], "vendor_id": None},
        "La venta debe tener al menos un producto",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "vendor_id": False},
        "Faltan campos requeridos",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "vendor_id": 0.0},
        "Faltan campos requeridos",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "vendor_id": 10**30},
        "Vendedor inválido",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "vendor_id": [1]},
        "Vendedor inválido",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "vendor_id": "x", "payment_method": None},
        "Vendedor inválido",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "payment_method": None},
        "Faltan campos requeridos",
    ),
    (
        "PUT",
        "/api/sales/1",
        {"items": [{"item_id": 1, "quantity": 1}], "payment_method": "x" * 31},
        "Método de pago inválido",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), BAD_BODIES)
def test_malformed_bodies_are_400(
    stack: Stack, admin: Account, method: str, path: str, body: Any, message: str | None
) -> None:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    response = admin.client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, message or "El texto contiene caracteres no permitidos")
    template = "/api/sales/{sale_id}" if method == "PUT" else path
    conforms(method, template, response)
