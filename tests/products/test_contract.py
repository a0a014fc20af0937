"""The products contract through the gateway: one lenient-integer and one money rule on every
path, malformed input of every class answered 400 (never 500), and real responses matching the
response models the OpenAPI document publishes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter

from services.products import schemas
from services.products.api import router
from tests.products.conftest import create_product, error_of, product_body
from tests.support.stack import ApiClient

CSV = {"content-type": "text/csv"}
HUGE = "9" * 30


def response_model(method: str, path: str) -> Any:
    """The `response_model` the products router declares for this operation."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in route.methods:
            return route.response_model
    raise AssertionError(f"no route {method} {path}")


def conforms(response: httpx.Response, method: str, path: str) -> Any:
    """The body validated against the route's declared model (strict: no coercion)."""
    assert response.status_code < 300, response.text
    assert response.headers["content-type"].startswith("application/json")
    model = response_model(method, path)
    assert model is not None
    return TypeAdapter(model).validate_json(response.content, strict=True)


@pytest.fixture(scope="module")
def existing(admin: ApiClient) -> dict[str, Any]:
    return create_product(admin)


# ------------------------------------------------------------------ one rule for integers


def test_numeric_strings_mean_the_same_number_in_put_and_in_bulk_stock(admin: ApiClient) -> None:
    """Issue 12: PUT took "5" and stock_update_bulk refused it. Both follow `lenient_int` now:
    "5", 5 and 5.0 are 5; 5.5, true and "5.0" are refused, each with its own path's wording."""
    product = create_product(admin, quantity=1)
    pid = product["id"]
    assert admin.put(f"/api/products/{pid}", json={"quantity": "5"}).status_code == 200
    assert admin.get(f"/api/products/{pid}").json()["stock"] == 5
    bulk = admin.post(
        "/api/products/stock_update_bulk",
        json={"products": [{"id": str(pid), "new_stock": "7"}]},
    )
    assert bulk.status_code == 200, bulk.text
    assert admin.get(f"/api/products/{pid}").json()["stock"] == 7
    bulk = admin.post(
        "/api/products/stock_update_bulk", json={"products": [{"id": pid, "new_stock": 8.0}]}
    )
    assert bulk.status_code == 200, bulk.text
    assert admin.get(f"/api/products/{pid}").json()["stock"] == 8

    for value in (5.5, True, "5.0", "cinco", [5], None):
        error_of(
            admin.put(f"/api/products/{pid}", json={"quantity": value}),
            400,
            "Cantidad: El campo es obligatorio"
            if value is None
            else "Cantidad: Debe ser un número entero",
        )
        error_of(
            admin.post(
                "/api/products/stock_update_bulk",
                json={"products": [{"id": pid, "new_stock": value}]},
            ),
            400,
            "Cada producto requiere un stock entero no negativo",
        )
    assert admin.get(f"/api/products/{pid}").json()["stock"] == 8


def test_numeric_strings_mean_the_same_amount_in_put_and_in_bulk_price(admin: ApiClient) -> None:
    """One money rule (`parse_money` then `money`): a numeric string is an amount everywhere,
    rounded half up to cents."""
    product = create_product(admin, price=1)
    pid = product["id"]
    assert admin.put(f"/api/products/{pid}", json={"price": "2.345"}).status_code == 200
    assert admin.get(f"/api/products/{pid}").json()["price"] == 2.35
    bulk = admin.post(
        "/api/products/update_price_bulk",
        json={"products": [{"id": pid, "new_price": "3.005"}]},
    )
    assert bulk.status_code == 200, bulk.text
    assert admin.get(f"/api/products/{pid}").json()["price"] == 3.01
    for value in ("NaN", "1e999999", True, "1_0", {"v": 1}):
        error_of(
            admin.put(f"/api/products/{pid}", json={"price": value}),
            400,
            "Precio: Debe ser un número",
        )
        error_of(
            admin.post(
                "/api/products/update_price_bulk",
                json={"products": [{"id": pid, "new_price": value}]},
            ),
            400,
            "Cada producto requiere un precio numérico",
        )
    assert admin.get(f"/api/products/{pid}").json()["price"] == 3.01


# ---------------------------------------------------------------- malformed input is a 400

TEXT_QUERIES = [
    ("/api/products", "search"),
    ("/api/products", "sort"),
    ("/api/products", "order"),
    ("/api/products", "view_mode"),
    ("/api/products_all", "search"),
    ("/api/products_all", "page"),
    ("/api/items", "q"),
]


@pytest.mark.parametrize(("path", "param"), TEXT_QUERIES)
def test_nul_in_a_query_parameter_is_400(seller: ApiClient, path: str, param: str) -> None:
    error_of(seller.get(path, params={param: "a\x00b"}), 400)


def test_nul_in_export_filters_and_barcode_is_400(admin: ApiClient) -> None:
    error_of(admin.get("/api/products/export", params={"search": "\x00"}), 400)
    error_of(admin.get("/api/products/info/12%0034"), 400)
    error_of(admin.post("/api/products/import?skip_invalid=%00", content=b"x", headers=CSV), 400)


def test_invalid_utf8_in_query_and_path_never_fails(seller: ApiClient) -> None:
    assert seller.get("/api/products?search=%FF%FE").status_code == 200
    assert seller.get("/api/items?q=%C3%28").status_code == 200
    error_of(seller.get("/api/products/info/%FF"), 400, "Código de barras inválido")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/products/{}"),
        ("PUT", "/api/products/{}"),
        ("DELETE", "/api/products/{}"),
        ("POST", "/api/products/{}/activate"),
        ("GET", "/api/products/{}/movements"),
    ],
)
def test_huge_path_id_is_a_json_404(admin: ApiClient, method: str, path: str) -> None:
    """The gateway routes ids of at most 18 digits (longer: its JSON 404); the largest it
    routes is an unknown product, not a database error. 0 is unknown too."""
    kwargs: dict[str, Any] = {"json": {"price": 1}} if method == "PUT" else {}
    error_of(admin.request(method, path.format(HUGE), **kwargs), 404)
    for pid in ("9" * 18, "0", "000000000000000001"[:-1] + "0"):
        error_of(admin.request(method, path.format(pid), **kwargs), 404, "Producto no encontrado")


def test_huge_query_integers_fall_back(seller: ApiClient, admin: ApiClient) -> None:
    page = seller.get("/api/products_all", params={"page": HUGE, "limit": HUGE})
    assert page.status_code == 200 and page.json()["limit"] == 250
    product = create_product(admin)
    movements = admin.get(
        f"/api/products/{product['id']}/movements", params={"page": HUGE, "limit": "-" + HUGE}
    )
    assert movements.status_code == 200 and movements.json()["limit"] == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"products": [{"id": HUGE, "new_stock": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": int(HUGE), "new_stock": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": 2**63, "new_stock": 1}]}, "Cada producto requiere id"),
        ({"products": [{"id": 1, "new_stock": int(HUGE)}]}, "El stock debe estar entre 0 y 10000"),
        ({"products": [[1, 2]]}, "Cada producto requiere id"),
        ({"products": "x"}, "Datos inválidos"),
        ({"products": None}, "Datos inválidos"),
    ],
)
def test_bulk_stock_huge_and_misshapen_values(
    admin: ApiClient, payload: dict[str, Any], message: str
) -> None:
    error_of(admin.post("/api/products/stock_update_bulk", json=payload), 400, message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quantity", int(HUGE), "Cantidad: El valor máximo es 10000"),
        ("quantity", HUGE, "Cantidad: El valor máximo es 10000"),  # digits: an integer, too big
        ("price", int(HUGE), "Precio: El valor máximo es 1000000.0"),
        ("price", 1e308, "Precio: El valor máximo es 1000000.0"),
        ("name", {"a": 1}, "Nombre: Debe ser texto"),
        ("barcode", [], "Código de barras: Debe ser texto"),
        ("expiration_date", 20300101, "Fecha de expiración: Debe ser texto"),
    ],
)
def test_create_huge_and_wrong_types(
    admin: ApiClient, field: str, value: Any, message: str
) -> None:
    error_of(admin.post("/api/products", json=product_body(**{field: value})), 400, message)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/products"),
        ("PUT", "/api/products/{id}"),
        ("POST", "/api/products/update_price_bulk"),
        ("POST", "/api/products/stock_update_bulk"),
    ],
)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Se requiere un cuerpo JSON"),
        (b"[]", "El cuerpo de la petición debe ser un objeto JSON"),
        (b'[{"id": 1}]', "El cuerpo de la petición debe ser un objeto JSON"),
        (b"{", "El cuerpo de la petición debe ser un objeto JSON válido"),
        (b'{"name": "\xff"}', "El cuerpo de la petición debe ser un objeto JSON válido"),
        (b'{"name": "a\\u0000"}', "El texto contiene caracteres no permitidos"),
        (
            b'{"products": [{"id": 1, "x": "\\u0000"}]}',
            "El texto contiene caracteres no permitidos",
        ),
    ],
)
def test_malformed_bodies_are_400(
    admin: ApiClient, existing: dict[str, Any], method: str, path: str, content: bytes, message: str
) -> None:
    response = admin.request(
        method,
        path.format(id=existing["id"]),
        content=content,
        headers={"content-type": "application/json"},
    )
    error_of(response, 400, message)


def test_put_answers_role_then_unknown_product_then_body(
    admin: ApiClient, seller: ApiClient
) -> None:
    missing = "987654321098"
    bad = {"quantity": "many"}
    error_of(seller.put(f"/api/products/{missing}", json=bad), 403, "Permiso denegado")
    error_of(admin.put(f"/api/products/{missing}", json=bad), 404, "Producto no encontrado")
    error_of(
        admin.put(f"/api/products/{missing}", content=b"[", headers={"content-type": "text/plain"}),
        404,
        "Producto no encontrado",
    )
    product = create_product(admin)
    error_of(
        admin.put(f"/api/products/{product['id']}", json=bad),
        400,
        "Cantidad: Debe ser un número entero",
    )


def test_nul_in_a_field_is_400_and_nothing_is_written(admin: ApiClient) -> None:
    product = create_product(admin)
    error_of(
        admin.put(f"/api/products/{product['id']}", json={"name": "a\x00b"}),
        400,
        "El texto contiene caracteres no permitidos",
    )
    assert admin.get(f"/api/products/{product['id']}").json() == product


# --------------------------------------------------------------------------- the CSV import


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"barcode,name,quantity,price\nab\x00c,Nombre,1,1\n",
            "El archivo CSV contiene caracteres",
        ),
        ("barcode,name,quantity,price\n".encode("utf-16"), "El archivo CSV contiene caracteres"),
        (b"barcode,name,quantity,price\n\x81\x8d,x,1,1\n", "El archivo CSV debe estar en UTF-8"),
        (
            b'barcode,name,quantity,price\n"' + b"x" * 200_000 + b'",n,1,1\n',
            "El archivo CSV no es válido",
        ),
    ],
)
def test_malformed_csv_is_400(admin: ApiClient, content: bytes, message: str) -> None:
    for params in ({}, {"skip_invalid": "1"}):
        body = error_of(
            admin.post("/api/products/import", params=params, content=content, headers=CSV), 400
        )
        assert body["error"].startswith(message), body


def test_malformed_multipart_csv_is_400(admin: ApiClient) -> None:
    response = admin.post(
        "/api/products/import",
        files={"file": ("p.csv", b"barcode,name,quantity,price\n1,\x00,1,1\n", "text/csv")},
    )
    error_of(response, 400)
    response = admin.post(
        "/api/products/import",
        content=b"--xyz\r\nnot a form",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    error_of(response, 400)


def test_import_rows_follow_the_same_integer_and_money_rules(admin: ApiClient) -> None:
    code = product_body()["barcode"]
    content = f"barcode,name,quantity,price\n{code},Fila,+7,1.005\n"
    response = admin.post("/api/products/import", content=content, headers=CSV)
    assert response.status_code == 200, response.text
    product = admin.get("/api/products_all", params={"search": code}).json()["data"][0]
    assert (product["stock"], product["price"]) == (7, 1.01)


# ----------------------------------------------------------- responses match their models


def test_real_responses_match_the_declared_models(admin: ApiClient, seller: ApiClient) -> None:
    product = create_product(admin, expiration_date=None, description="")
    pid = product["id"]
    assert admin.put(f"/api/products/{pid}", json={"quantity": 3}).status_code == 200

    conforms(seller.get("/api/products_all"), "GET", "/api/products_all")
    conforms(seller.get("/api/products", params={"limit": 3}), "GET", "/api/products")
    conforms(seller.get("/api/items", params={"q": product["barcode"]}), "GET", "/api/items")
    conforms(seller.get("/api/items"), "GET", "/api/items")
    detail = conforms(seller.get(f"/api/products/{pid}"), "GET", "/api/products/{product_id}")
    assert detail.expiration_date is None and detail.status == 1
    movements = conforms(
        admin.get(f"/api/products/{pid}/movements"), "GET", "/api/products/{product_id}/movements"
    )
    assert [m.reason for m in movements.data] == ["product_update", "initial"]

    created = admin.post("/api/products", json=product_body())
    assert created.status_code == 201
    conforms(created, "POST", "/api/products")
    conforms(
        admin.put(f"/api/products/{pid}", json={"price": 4}), "PUT", "/api/products/{product_id}"
    )
    conforms(admin.delete(f"/api/products/{pid}"), "DELETE", "/api/products/{product_id}")
    conforms(
        admin.post(f"/api/products/{pid}/activate"), "POST", "/api/products/{product_id}/activate"
    )
    for path, entry in (
        ("/api/products/update_price_bulk", {"id": pid, "new_price": 5}),
        ("/api/products/stock_update_bulk", {"id": pid, "new_stock": 5}),
    ):
        conforms(admin.post(path, json={"products": [entry]}), "POST", path)

    content = f"barcode,name,quantity,price\n{product['barcode']},x,1,1\n,sin,1,1\n"
    imported = admin.post(
        "/api/products/import", params={"skip_invalid": "1"}, content=content, headers=CSV
    )
    result = conforms(imported, "POST", "/api/products/import")
    assert (result.updated, result.skipped) == (1, 1)
    assert result.errors[0].barcode is None


def test_import_rejection_matches_its_documented_error_model(admin: ApiClient) -> None:
    content = "barcode,name,quantity,price\n,sin código,1,1\n"
    response = admin.post("/api/products/import", content=content, headers=CSV)
    assert response.status_code == 400
    rejected = schemas.ImportRejected.model_validate_json(response.content, strict=True)
    assert rejected.invalid_rows == 1 and rejected.errors and rejected.errors[0].row == 2


def test_every_route_documents_its_success_body() -> None:
    for route in router.routes:
        assert isinstance(route, APIRoute)
        assert route.summary, route.path
        if route.path == "/api/products/export":
            assert "text/csv" in route.responses[200]["content"]
            continue
        assert route.response_model is not None, route.path
        model = route.response_model
        inner = getattr(model, "__args__", (model,))[0]
        assert issubclass(inner, BaseModel), route.path
