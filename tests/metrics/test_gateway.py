"""The metrics endpoints through the gateway of the shared stack: access levels, errors, and
sales made through the sales API showing up in the very next request.

The shared database holds other tests' data, so catalogue-wide figures are asserted as deltas
between two requests of the same test (nothing else writes while a test runs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from services.metrics import rollups
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database
from tests.metrics.support import TZ, wait_clear_of_midnight
from tests.support.stack import ApiClient, Stack, unique

PASSWORD = "metrics-test-password"
INVALID_DATE = "Fecha inválida: use el formato YYYY-MM-DD"
INVALID_PERIOD = "El período debe ser un número entero de días entre 1 y 3660"


def login_new_user(stack: Stack, role: str) -> tuple[int, str, ApiClient]:
    username = unique(role[:4])
    with stack.root() as root:
        response = root.post(
            "/api/users",
            json={
                "username": username,
                "email": f"{username}@example.test",
                "password": PASSWORD,
                "role": role,
            },
        )
    assert response.status_code == 201, response.text
    return response.json()["id"], username, stack.login(username, PASSWORD)


@pytest.fixture(scope="module")
def seller(stack: Stack) -> Iterator[tuple[int, str, ApiClient]]:
    account = login_new_user(stack, "vendedor")
    yield account
    account[2].close()


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[ApiClient]:
    _, _, client = login_new_user(stack, "admin")
    yield client
    client.close()


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == message and isinstance(body["code"], str)


def test_access_levels(stack: Stack, seller: tuple[int, str, ApiClient], admin: ApiClient) -> None:
    with stack.client() as anonymous:
        for path in ("/api/stats", "/api/metrics", "/api/never-sold"):
            assert_error(anonymous.get(path), 401, "No autenticado")
    seller_client = seller[2]
    assert seller_client.get("/api/stats").status_code == 200
    assert_error(seller_client.get("/api/metrics"), 403, "Permiso denegado")
    assert_error(seller_client.get("/api/never-sold"), 403, "Permiso denegado")
    with stack.root() as root:
        for client in (admin, root):
            for path in ("/api/stats", "/api/metrics", "/api/never-sold"):
                response = client.get(path)
                assert response.status_code == 200, response.text
                assert response.headers["content-type"].startswith("application/json")


def test_the_service_checks_the_role_itself(stack: Stack) -> None:
    """Straight to the service with a valid vendedor identity: still 403 (defence in depth)."""
    import uuid

    from stockmanager.identity import IDENTITY_HEADER, Identity, sign_identity

    secret = stack.env["STOCKMANAGER_INTERNAL_SECRET"]
    identity = Identity(
        user_id=99,
        username="x",
        role="vendedor",
        request_id=uuid.uuid4().hex,
        ip="127.0.0.1",
        issued_at=time.time(),
    )
    headers = {IDENTITY_HEADER: sign_identity(identity, secret)}
    with httpx.Client(base_url=stack.service_urls["metrics"][0], timeout=30) as client:
        assert_error(client.get("/api/metrics", headers=headers), 403, "Permiso denegado")
        assert_error(client.get("/api/never-sold", headers=headers), 403, "Permiso denegado")
        assert client.get("/api/stats", headers=headers).status_code == 200
        assert_error(client.get("/api/stats"), 401, "No autenticado")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2001-02-30", "to": "2001-03-01"}, INVALID_DATE),
        ({"from": "01/03/2001", "to": "2001-03-05"}, INVALID_DATE),
        ({"from": "2001-03-01", "to": "2001-3-5"}, INVALID_DATE),
        ({"from": "2001-03-01T00:00:00", "to": "2001-03-05"}, INVALID_DATE),
        ({"to": "yesterday"}, INVALID_DATE),
        (
            {"from": "2001-03-10", "to": "2001-03-01"},
            "La fecha 'from' no puede ser posterior a 'to'",
        ),
        (
            {"from": "1990-01-01", "to": "2001-01-01"},
            "El rango de fechas no puede superar 3660 días",
        ),
        ({"period": "0"}, INVALID_PERIOD),
        ({"period": "-3"}, INVALID_PERIOD),
        ({"period": "abc"}, INVALID_PERIOD),
        ({"period": "7.5"}, INVALID_PERIOD),
        ({"period": "3661"}, INVALID_PERIOD),
    ],
)
def test_invalid_windows_are_400(admin: ApiClient, params: dict[str, str], message: str) -> None:
    assert_error(admin.get("/api/metrics", params=params), 400, message)


def test_window_parameters(admin: ApiClient) -> None:
    today = datetime.now(TZ).date()

    def period(params: dict[str, str]) -> dict[str, object]:
        response = admin.get("/api/metrics", params=params)
        assert response.status_code == 200, response.text
        return response.json()["period"]

    wait_clear_of_midnight(margin=5)
    assert period({}) == {
        "start": (today - timedelta(days=6)).isoformat(),
        "end": today.isoformat(),
        "days": 7,
    }
    assert period({"period": "30"})["days"] == 30
    assert period({"period": "3660"})["days"] == 3660
    # Both dates given: the period is ignored.
    assert period({"from": "2001-03-05", "to": "2001-03-11", "period": "nonsense"}) == {
        "start": "2001-03-05",
        "end": "2001-03-11",
        "days": 7,
    }
    # Only `from`: up to today. Only `to`: `period` days ending there.
    assert period({"from": (today - timedelta(days=2)).isoformat()}) == {
        "start": (today - timedelta(days=2)).isoformat(),
        "end": today.isoformat(),
        "days": 3,
    }
    assert period({"to": "2001-03-11", "period": "3"}) == {
        "start": "2001-03-09",
        "end": "2001-03-11",
        "days": 3,
    }
    # Empty parameters are absent parameters (as upstream).
    assert period({"from": "", "to": "", "period": ""})["days"] == 7


def test_a_sale_is_in_every_figure_right_after_its_201(
    stack: Stack, seller: tuple[int, str, ApiClient], admin: ApiClient
) -> None:
    wait_clear_of_midnight(margin=10)
    seller_id, seller_name, seller_client = seller

    def metrics() -> dict:
        response = admin.get("/api/metrics", params={"period": "1"})
        assert response.status_code == 200, response.text
        return response.json()

    def stats() -> dict:
        response = seller_client.get("/api/stats")
        assert response.status_code == 200, response.text
        return response.json()

    def never_sold_ids() -> set[int]:
        response = admin.get("/api/never-sold")
        assert response.status_code == 200, response.text
        return {product["id"] for product in response.json()["products"]}

    m0, s0 = metrics(), stats()
    barcode = str(int(unique("")[1:], 16))[:13]
    created = admin.post(
        "/api/products",
        json={
            "barcode": barcode,
            "name": unique("Met")[:20],
            "quantity": 10,
            "min_quantity": 2,
            "price": 12.34,
        },
    )
    assert created.status_code == 201, created.text
    # Upstream's 201 body has no id: find the product by its barcode.
    found = admin.get("/api/products_all", params={"search": barcode})
    [product_id] = [p["id"] for p in found.json()["data"] if p["barcode"] == barcode]
    m1, s1 = metrics(), stats()
    assert product_id in never_sold_ids()
    assert m1["alerts"]["noMovement"] == m0["alerts"]["noMovement"] + 1
    assert m1["inventory"]["totalUnits"] == m0["inventory"]["totalUnits"] + 10
    assert round(m1["inventory"]["totalValue"] - m0["inventory"]["totalValue"], 2) == 123.4
    assert s1["products"] == s0["products"] + 1

    sale = seller_client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": product_id, "quantity": 3}], "payment_method": "Efectivo"},
    )
    assert sale.status_code == 201, sale.text
    m2, s2 = metrics(), stats()  # no waiting: the very next requests
    assert s2["sales_today"] == s1["sales_today"] + 1
    assert m2["kpis"]["totalSales"] == m1["kpis"]["totalSales"] + 1
    assert m2["kpis"]["unitsSold"] == m1["kpis"]["unitsSold"] + 3
    assert round(m2["kpis"]["revenue"] - m1["kpis"]["revenue"], 2) == 37.02
    assert m2["alerts"]["noMovement"] == m1["alerts"]["noMovement"] - 1
    assert m2["inventory"]["totalUnits"] == m1["inventory"]["totalUnits"] - 3
    mine = next(v for v in m2["vendors"] if v["id"] == seller_id)
    assert mine == {
        "id": seller_id,
        "name": seller_name,
        "revenue": 37.02,
        "salesCount": 1,
        "unitsSold": 3,
        "avgTicket": 37.02,
        "revenueChange": 100,
        "salesChange": 100,
    }
    assert product_id not in never_sold_ids()
    hour = datetime.now(TZ).hour
    assert sum(m2["salesByHour"]) == sum(m1["salesByHour"]) + 1
    assert m2["salesByHour"][hour] >= 1


async def test_editing_a_sale_of_a_closed_day_through_the_sales_api(
    stack: Stack, db: Database, seller: tuple[int, str, ApiClient], admin: ApiClient
) -> None:
    """sales PUT -> sale.updated -> metrics marks the day dirty -> the next reports read it
    live until the refresher aggregates it again."""
    seller_id, seller_name, _ = seller
    barcode = str(int(unique("")[1:], 16))[:13]
    created = admin.post(
        "/api/products",
        json={
            "barcode": barcode,
            "name": unique("Old")[:20],
            "quantity": 100,
            "min_quantity": 1,
            "price": 10,
        },
    )
    assert created.status_code == 201, created.text
    found = admin.get("/api/products_all", params={"search": barcode}).json()["data"]
    [product_id] = [p["id"] for p in found if p["barcode"] == barcode]
    sold_at = datetime(2001, 9, 9, 12, 0, tzinfo=TZ)
    day = sold_at.date().isoformat()
    async with db.transaction() as conn:  # a sale from long ago (as imported history)
        sale_id = await conn.scalar(
            text(
                "INSERT INTO sales.sales (created_at, updated_at, vendor_id, vendor_username,"
                " payment_method) VALUES (:t, :t, :v, :u, 'Efectivo') RETURNING id"
            ),
            {"t": sold_at, "v": seller_id, "u": seller_name},
        )
        await conn.execute(
            text(
                "INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)"
                " VALUES (:s, :i, 'old', 2, 10.00)"
            ),
            {"s": sale_id, "i": product_id},
        )
    # Aggregate the day again now (the stack's refresher would within its interval); from
    # then on the day is covered: sealed, below the watermark, not dirty.
    await refresh_now(db)
    async with db.connect() as conn:
        state = (
            await conn.execute(
                text(
                    "SELECT sealed_through, sale_watermark,"
                    " (SELECT count(*) FROM metrics.dirty_days WHERE day = :d) AS dirty"
                    " FROM metrics.rollup_state"
                ),
                {"d": sold_at.date()},
            )
        ).one()
    assert state.sealed_through > sold_at.date()
    assert state.sale_watermark >= sale_id and state.dirty == 0

    def day_figures() -> tuple[float, int]:
        response = admin.get("/api/metrics", params={"from": day, "to": day})
        assert response.status_code == 200, response.text
        mine = next(v for v in response.json()["vendors"] if v["id"] == seller_id)
        return mine["revenue"], mine["unitsSold"]

    assert day_figures() == (20.0, 2)
    edited = admin.put(
        f"/api/sales/{sale_id}", json={"items": [{"item_id": product_id, "quantity": 5}]}
    )
    assert edited.status_code == 200, edited.text
    started = time.monotonic()
    while day_figures() != (50.0, 5):
        assert time.monotonic() - started < 5, "the edit never reached the metrics"
        await asyncio.sleep(0.02)
    await refresh_now(db)
    assert day_figures() == (50.0, 5)


async def refresh_now(db: Database) -> None:
    """One refresher pass (waiting while the stack's own refresher holds the lock)."""
    deadline = time.monotonic() + 60
    while await rollups.refresh(db, MetricsSettings()) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
