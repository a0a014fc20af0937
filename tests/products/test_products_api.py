"""Products endpoints through the gateway: bodies field by field, validation, 404/409, roles."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.products.conftest import create_product, error_of, find_by_barcode, product_body
from tests.support.stack import ApiClient, unique

LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
PRODUCT_KEYS = {
    "id",
    "barcode",
    "name",
    "description",
    "stock",
    "min_stock",
    "price",
    "status",
    "expiration_date",
    "created_at",
    "updated_at",
}


def test_create_then_get_returns_every_field(admin: ApiClient) -> None:
    body = product_body(name="  Galletas de avena  ", price=1234.5)
    response = admin.post("/api/products", json=body)
    assert response.status_code == 201
    assert response.json() == {"message": "Producto creado exitosamente"}
    listed = find_by_barcode(admin, body["barcode"])
    detail = admin.get(f"/api/products/{listed['id']}")
    assert detail.status_code == 200
    product = detail.json()
    assert set(product) == PRODUCT_KEYS
    assert product == {
        "id": listed["id"],
        "barcode": body["barcode"],
        "name": "Galletas de avena",  # trimmed, as upstream
        "description": "una descripción",
        "stock": 20,
        "min_stock": 5,
        "price": 1234.5,
        "status": 1,
        "expiration_date": "2031-01-31",
        "created_at": product["created_at"],
        "updated_at": product["updated_at"],
    }
    assert LOCAL_TIME.match(product["created_at"]) and LOCAL_TIME.match(product["updated_at"])
    assert listed == product


def test_optional_fields_default(admin: ApiClient) -> None:
    body = product_body()
    del body["description"], body["expiration_date"]
    assert admin.post("/api/products", json=body).status_code == 201
    product = find_by_barcode(admin, body["barcode"])
    assert product["description"] == "" and product["expiration_date"] is None


def test_unknown_product_is_404(seller: ApiClient, admin: ApiClient) -> None:
    missing = 987654321012
    error_of(seller.get(f"/api/products/{missing}"), 404, "Producto no encontrado")
    error_of(
        admin.put(f"/api/products/{missing}", json={"price": 1}), 404, "Producto no encontrado"
    )
    error_of(admin.delete(f"/api/products/{missing}"), 404, "Producto no encontrado")
    error_of(admin.post(f"/api/products/{missing}/activate"), 404, "Producto no encontrado")
    error_of(admin.get(f"/api/products/{missing}/movements"), 404, "Producto no encontrado")


@pytest.mark.parametrize("missing", ["barcode", "name", "quantity", "min_quantity", "price"])
def test_missing_required_key(admin: ApiClient, missing: str) -> None:
    body = product_body()
    del body[missing]
    error_of(admin.post("/api/products", json=body), 400, "Faltan campos requeridos")


INVALID: list[tuple[str, Any, str]] = [
    ("barcode", "1" * 21, "Código de barras: Máximo 20 caracteres (tiene 21)"),
    ("barcode", "   ", "Código de barras: El campo es obligatorio"),
    ("barcode", 123, "Código de barras: Debe ser texto"),
    ("name", "n" * 26, "Nombre: Máximo 25 caracteres (tiene 26)"),
    ("name", "", "Nombre: El campo es obligatorio"),
    ("name", None, "Nombre: El campo es obligatorio"),
    ("name", ["x"], "Nombre: Debe ser texto"),
    ("description", "d" * 201, "Descripción: Máximo 200 caracteres (tiene 201)"),
    ("quantity", -1, "Cantidad: El valor mínimo es 0"),
    ("quantity", 10001, "Cantidad: El valor máximo es 10000"),
    ("quantity", 5.5, "Cantidad: Debe ser un número entero"),
    ("quantity", "many", "Cantidad: Debe ser un número entero"),
    ("quantity", True, "Cantidad: Debe ser un número entero"),
    ("min_quantity", -1, "Cantidad mínima: El valor mínimo es 0"),
    ("min_quantity", 1001, "Cantidad mínima: El valor máximo es 1000"),
    ("price", -0.01, "Precio: El valor mínimo es 0"),
    ("price", 1000000.01, "Precio: El valor máximo es 1000000.0"),
    ("price", "cheap", "Precio: Debe ser un número"),
    ("price", False, "Precio: Debe ser un número"),
    ("expiration_date", "2024-02-30", "Fecha de expiración: Formato inválido (use AAAA-MM-DD)"),
    ("expiration_date", "2024-1-05", "Fecha de expiración: Formato inválido (use AAAA-MM-DD)"),
    ("expiration_date", "31/12/2024", "Fecha de expiración: Formato inválido (use AAAA-MM-DD)"),
    ("expiration_date", "2024-12-31T1", "Fecha de expiración: Máximo 10 caracteres (tiene 12)"),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_create_validation(admin: ApiClient, field: str, value: Any, message: str) -> None:
    body = product_body(**{field: value})
    error_of(admin.post("/api/products", json=body), 400, message)


def test_limits_are_inclusive(admin: ApiClient) -> None:
    body = product_body(
        barcode=unique("x") + "1" * 9,
        name="n" * 25,
        description="d" * 200,
        quantity=10000,
        min_quantity=1000,
        price=1000000,
        expiration_date="2028-02-29",
    )
    assert len(body["barcode"]) == 20
    assert admin.post("/api/products", json=body).status_code == 201
    product = find_by_barcode(admin, body["barcode"])
    assert (product["stock"], product["min_stock"], product["price"]) == (10000, 1000, 1000000)
    zero = product_body(quantity=0, min_quantity=0, price=0)
    assert admin.post("/api/products", json=zero).status_code == 201


def test_numeric_strings_are_accepted_and_price_rounds_to_cents(admin: ApiClient) -> None:
    product = create_product(admin, quantity="7", price="10.005", min_quantity=3.0)
    assert (product["stock"], product["min_stock"], product["price"]) == (7, 3, 10.01)


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_update_validates_every_present_field(
    admin: ApiClient, field: str, value: Any, message: str
) -> None:
    product = create_product(admin)
    error_of(admin.put(f"/api/products/{product['id']}", json={field: value}), 400, message)
    assert admin.get(f"/api/products/{product['id']}").json() == product


def test_update_status_is_validated(admin: ApiClient) -> None:
    product = create_product(admin)
    error_of(
        admin.put(f"/api/products/{product['id']}", json={"status": 2}),
        400,
        "Estado: El valor máximo es 1",
    )


def test_put_price_only_changes_only_the_price(admin: ApiClient) -> None:
    before = create_product(admin, price=55)
    response = admin.put(f"/api/products/{before['id']}", json={"price": 10})
    assert response.status_code == 200
    assert response.json() == {"message": "Producto actualizado"}
    after = admin.get(f"/api/products/{before['id']}").json()
    assert after["price"] == 10
    unchanged = {k: v for k, v in after.items() if k not in ("price", "updated_at")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("price", "updated_at")}


def test_put_several_fields_and_clear_expiration(admin: ApiClient) -> None:
    product = create_product(admin)
    response = admin.put(
        f"/api/products/{product['id']}",
        json={
            "name": "Nuevo nombre",
            "description": "",
            "quantity": 3,
            "min_quantity": 4,
            "expiration_date": None,
            "unknown_key": "ignored",
        },
    )
    assert response.status_code == 200, response.text
    after = admin.get(f"/api/products/{product['id']}").json()
    assert (after["name"], after["description"], after["stock"], after["min_stock"]) == (
        "Nuevo nombre",
        "",
        3,
        4,
    )
    assert after["expiration_date"] is None


def test_put_without_changes_is_400(admin: ApiClient) -> None:
    product = create_product(admin, price=12)
    message = "No hay datos para actualizar"
    error_of(admin.put(f"/api/products/{product['id']}", json={}), 400, message)
    error_of(admin.put(f"/api/products/{product['id']}", json={"price": 12}), 400, message)
    error_of(admin.put(f"/api/products/{product['id']}", json={"other": 1}), 400, message)


def test_put_body_must_be_a_json_object(admin: ApiClient) -> None:
    product = create_product(admin)
    response = admin.put(
        f"/api/products/{product['id']}",
        content=b"[1]",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400


def test_update_barcode(admin: ApiClient) -> None:
    first = create_product(admin)
    second = create_product(admin)
    new_code = unique("nb")[:20]
    assert admin.put(f"/api/products/{first['id']}", json={"barcode": new_code}).status_code == 200
    assert admin.get(f"/api/products/{first['id']}").json()["barcode"] == new_code
    error_of(
        admin.put(f"/api/products/{second['id']}", json={"barcode": new_code}),
        409,
        "Ya existe un registro con ese valor",
    )
    error_of(
        admin.put(f"/api/products/{second['id']}", json={"barcode": "1" * 21}),
        400,
        "Código de barras: Máximo 20 caracteres (tiene 21)",
    )


def test_duplicate_barcode_is_409(admin: ApiClient) -> None:
    product = create_product(admin)
    again = product_body(barcode=product["barcode"])
    body = error_of(
        admin.post("/api/products", json=again), 409, "Ya existe un registro con ese valor"
    )
    assert body["code"] == "conflict"


def test_disable_and_activate(admin: ApiClient, seller: ApiClient) -> None:
    product = create_product(admin)
    response = admin.delete(f"/api/products/{product['id']}")
    assert (response.status_code, response.json()) == (200, {"message": "Producto deshabilitado"})
    assert admin.get(f"/api/products/{product['id']}").json()["status"] == 0
    # Hidden from the active list and the autocomplete; still in products_all.
    active = seller.get("/api/products", params={"search": product["barcode"]}).json()
    assert active["data"] == [] and active["total"] == 0
    assert seller.get("/api/items", params={"q": product["barcode"]}).json() == []
    assert find_by_barcode(seller, product["barcode"])["status"] == 0
    # Disabling again is still 200.
    assert admin.delete(f"/api/products/{product['id']}").status_code == 200

    response = admin.post(f"/api/products/{product['id']}/activate")
    assert (response.status_code, response.json()) == (200, {"message": "Producto activado"})
    assert admin.get(f"/api/products/{product['id']}").json()["status"] == 1
    active = seller.get("/api/products", params={"search": product["barcode"]}).json()
    assert [p["id"] for p in active["data"]] == [product["id"]]


WRITES = [
    ("POST", "/api/products", {"json": {}}),
    ("PUT", "/api/products/1", {"json": {"price": 1}}),
    ("DELETE", "/api/products/1", {}),
    ("POST", "/api/products/1/activate", {}),
    ("POST", "/api/products/update_price_bulk", {"json": {"products": []}}),
    ("POST", "/api/products/stock_update_bulk", {"json": {"products": []}}),
    ("POST", "/api/products/import", {"content": b"barcode,name,quantity,price\n"}),
    ("GET", "/api/products/export", {}),
    ("GET", "/api/products/1/movements", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
def test_seller_cannot_write(seller: ApiClient, method: str, path: str, kwargs: Any) -> None:
    error_of(seller.request(method, path, **kwargs), 403, "Permiso denegado")


READS = [
    "/api/products_all",
    "/api/products",
    "/api/products/1",
    "/api/items?q=a",
    "/api/products/info/123",
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), WRITES + [("GET", path, {}) for path in READS]
)
def test_anonymous_is_401(anon: ApiClient, method: str, path: str, kwargs: Any) -> None:
    error_of(anon.request(method, path, **kwargs), 401, "No autenticado")


def test_root_can_write(root: ApiClient) -> None:
    product = create_product(root)
    assert root.put(f"/api/products/{product['id']}", json={"price": 3}).status_code == 200
