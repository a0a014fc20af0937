"""The one validation layer: body reading, value rules and the translator, without HTTP servers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, model_validator

from stockmanager.contracts.fields import (
    integer_rule,
    invalid,
    lenient_int,
    money,
    parse_money,
    query_int,
    storable_text,
    text_rule,
)
from stockmanager.contracts.validation import ContractRoute, RequestBody
from stockmanager.error_handlers import install_error_handlers
from stockmanager.errors import Forbidden


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (5.0, 5),
        ("5", 5),
        (" -7 ", -7),
        ("+3", 3),
        (5.7, None),
        (True, None),
        (float("nan"), None),
        (float("inf"), None),
        ("5.0", None),
        ("1_000", None),
        ("٣", None),  # non-ASCII digits: int() would take them, we don't
        ("", None),
        (None, None),
        ([1], None),
        ("9" * 20, 10**20 - 1),
        ("9" * 5000, None),
    ],
)
def test_lenient_int(value: object, expected: int | None) -> None:
    assert lenient_int(value) == expected


def test_query_int_falls_back() -> None:
    assert query_int(None, 3) == 3
    assert query_int("x", 3) == 3
    assert query_int(" 12 ", 3) == 12


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, Decimal("10")),
        ("10.005", Decimal("10.005")),
        (1.5, Decimal("1.5")),
        (True, None),
        ("abc", None),
        ("NaN", None),
        ("Infinity", None),
        (None, None),
    ],
)
def test_parse_money(value: object, expected: Decimal | None) -> None:
    assert parse_money(value) == expected


def test_money_rounds_half_up_to_cents() -> None:
    assert money(Decimal("10.005")) == Decimal("10.01")
    assert money(Decimal("10.004")) == Decimal("10.00")


def test_storable_text() -> None:
    assert storable_text("café ☕")
    assert not storable_text("a\x00b")
    assert not storable_text("\ud800")


Quantity = Annotated[int, integer_rule("Cantidad inválida", minimum=1, maximum=10)]
Name = Annotated[str, text_rule("Nombre inválido", max_length=5, min_length=1)]


class Order(RequestBody):
    name: Name
    quantity: Quantity

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        if isinstance(data, dict) and "name" not in data:
            raise invalid("Faltan campos requeridos")
        return data


async def only_admins(x_role: Annotated[str | None, Depends(lambda: None)] = None) -> None:
    return None


def refuse() -> None:
    raise Forbidden()


def make_client() -> TestClient:
    router = APIRouter(route_class=ContractRoute)

    @router.post("/orders")
    async def create(order: Order) -> dict[str, object]:
        return {"name": order.name, "quantity": order.quantity}

    @router.post("/guarded", dependencies=[Depends(refuse)])
    async def guarded(order: Order) -> dict[str, object]:
        return {}

    @router.post("/action")
    async def action(order: Order | None = None) -> dict[str, object]:
        return {"empty": order is None}

    @router.get("/search")
    async def search(q: str = "") -> dict[str, object]:
        return {"q": q}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return make_client()


def test_valid_body_lenient_values(client: TestClient) -> None:
    response = client.post("/orders", json={"name": " ab ", "quantity": "3"})
    assert response.status_code == 200
    assert response.json() == {"name": "ab", "quantity": 3}


def test_text_plain_body_is_read_as_json(client: TestClient) -> None:
    response = client.post(
        "/orders", content=b'{"name":"ab","quantity":2}', headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"", "application/json", 400, "Se requiere un cuerpo JSON"),
        (b"{", "application/json", 400, "El cuerpo de la petición debe ser un objeto JSON válido"),
        (b"[1,2]", "application/json", 400, "El cuerpo de la petición debe ser un objeto JSON"),
        (b"null", "application/json", 400, "El cuerpo de la petición debe ser un objeto JSON"),
        (
            b"\xff\xfe",
            "application/json",
            400,
            "El cuerpo de la petición debe ser un objeto JSON válido",
        ),
        (
            b'{"name":"\\ud800","quantity":1}',
            None,
            400,
            "El cuerpo de la petición debe ser un objeto JSON válido",
        ),
        (
            b'{"name":"a\\u0000","quantity":1}',
            None,
            400,
            "El texto contiene caracteres no permitidos",
        ),
        (
            b'{"name":"ab","quantity":1}',
            "application/xml",
            415,
            "Content-Type debe ser application/json",
        ),
        (b'{"quantity":1}', None, 400, "Faltan campos requeridos"),
        (b'{"name":"ab","quantity":5.5}', None, 400, "Cantidad inválida"),
        (b'{"name":"ab","quantity":99999999999999999999999}', None, 400, "Cantidad inválida"),
        (b'{"name":"ab","quantity":[1]}', None, 400, "Cantidad inválida"),
        (b'{"name":{"x":1},"quantity":1}', None, 400, "Nombre inválido"),
        (b'{"name":"ab"}', None, 400, "Faltan campos requeridos"),
    ],
)
def test_bad_bodies_are_json_400s(
    client: TestClient, content: bytes, content_type: str | None, status: int, message: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/orders", content=content, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == message


def test_roles_are_answered_before_body_errors(client: TestClient) -> None:
    response = client.post("/guarded", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 403


def test_optional_body_may_be_empty(client: TestClient) -> None:
    assert client.post("/action").json() == {"empty": True}
    assert client.post("/action", content=b"[]").status_code == 400


def test_unstorable_query_parameter_is_400(client: TestClient) -> None:
    response = client.get("/search", params={"q": "a\x00"})
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert client.get("/search", params={"q": "ok"}).json() == {"q": "ok"}


class AllOptional(RequestBody):
    note: str | None = None


def test_all_optional_body_still_refuses_what_is_not_an_object() -> None:
    router = APIRouter(route_class=ContractRoute)

    @router.put("/notes")
    async def update(body: AllOptional) -> dict[str, object]:
        return {"note": body.note}

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    client = TestClient(app)
    assert client.put("/notes", json={}).json() == {"note": None}
    for content in (b"", b"[]", b"{", b'""'):
        response = client.put("/notes", content=content)
        assert response.status_code == 400, content
        assert response.json()["code"] in ("invalid_json", "validation_error")


class Plain(BaseModel):
    note: str | None = None


def test_body_models_must_extend_request_body() -> None:
    router = APIRouter(route_class=ContractRoute)
    with pytest.raises(TypeError, match="must extend"):

        @router.put("/plain")
        async def update(body: Plain) -> dict[str, object]:
            return {}
