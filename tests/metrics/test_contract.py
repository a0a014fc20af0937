"""The metrics endpoints answer what their OpenAPI declarations say, on an empty database (where
the nullable figures are null) and on a hand-built shop, and malformed window parameters are a
400 JSON error, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from services.metrics.api import router
from tests.audit.documented import assert_documented
from tests.metrics.dataset import build_shop
from tests.metrics.support import IsolatedMetrics
from tests.support.stack import Stack

INVALID_DATE = "Fecha inválida: use el formato YYYY-MM-DD"
INVALID_PERIOD = "El período debe ser un número entero de días entre 1 y 3660"
WINDOW = {"from": "2001-03-05", "to": "2001-03-11"}


def documented(isolated: IsolatedMetrics, path: str, **params: Any) -> Any:
    response = isolated.get(path, **params)
    assert response.status_code == 200, response.text
    return assert_documented(router, "GET", path, response)


def test_empty_database_then_a_shop(isolated: IsolatedMetrics) -> None:
    stats = documented(isolated, "/api/stats")
    assert stats["low_stock_list"] == [] and stats["total_inventory_value"] == 0
    assert documented(isolated, "/api/never-sold") == {"products": []}
    empty = documented(isolated, "/api/metrics", period="30")
    assert empty["insights"]["bestDay"] is None
    assert empty["insights"]["peakHour"] is None
    assert empty["insights"]["topProduct"] is None
    assert empty["trendLine"]["values"][0] is None

    build_shop(isolated.database_url)
    stats = documented(isolated, "/api/stats")
    assert None in {item["sku"] for item in stats["low_stock_list"]}
    documented(isolated, "/api/never-sold")
    report = documented(isolated, "/api/metrics", **WINDOW)
    assert report["insights"]["bestDay"] is not None
    assert report["topProducts"] and report["vendors"] and report["inventoryForecast"]
    long = documented(isolated, "/api/metrics", **{"from": "2001-02-01", "to": "2001-03-31"})
    assert long["salesOverTime"]["labels"][0] == "01/02"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "²"}, INVALID_PERIOD),
        ({"period": "+-5"}, INVALID_PERIOD),
        ({"period": "٣"}, INVALID_PERIOD),
        ({"period": "99999999999999999999999"}, INVALID_PERIOD),
        ({"period": "\x00"}, None),
        ({"from": "\x00"}, None),
        ({"to": "\ufffd"}, INVALID_DATE),
        (
            {"from": "0001-01-01", "to": "0001-01-05"},
            "Rango de fechas fuera de los límites admitidos",
        ),
        ({"to": "9999-12-31"}, "Rango de fechas fuera de los límites admitidos"),
    ],
)
def test_malformed_window_parameters_are_400(
    isolated: IsolatedMetrics, params: dict[str, str], message: str | None
) -> None:
    response = isolated.get("/api/metrics", **params)
    assert response.status_code == 400, response.text
    body = assert_documented(router, "GET", "/api/metrics", response)
    if message is not None:
        assert body["error"] == message


@pytest.mark.parametrize(
    "query",
    ["period=%00", "from=%FF&to=%FE", "period=%C2%B2", "to=2001-01-01%00", "x%00=1"],
)
def test_malformed_parameters_through_the_gateway(stack: Stack, query: str) -> None:
    with stack.root() as root:
        response = root.get(f"/api/metrics?{query}")
        assert response.status_code == 400, response.text
        assert_documented(router, "GET", "/api/metrics", response)
        stats = root.get(f"/api/stats?{query}")
    if "%00" in query:
        assert stats.status_code == 400  # NUL in any parameter, even an unknown one
    else:
        assert stats.status_code == 200
        assert_documented(router, "GET", "/api/stats", stats)
