"""Every field of /api/stats, /api/metrics and /api/never-sold against hand-computed values.

The data set (tests/metrics/dataset.py) lives in a database of its own, served by its own
metrics process, so catalogue-wide figures are exact. Each check runs twice: with the rollups
emptied (everything aggregated live from the sales views) and after a refresh (closed days
from the rollups and the item-sums memo, today live). Both must give the same answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from services.metrics import rollups
from services.metrics.settings import MetricsSettings
from stockmanager.db import Database
from stockmanager.events import EventType, new_event
from tests.metrics.dataset import Shop
from tests.metrics.support import (
    TZ,
    IsolatedMetrics,
    Line,
    create_sale,
    delete_sales,
    local,
    wait_clear_of_midnight,
)

SHORT = ["Lun", "Mar", "Mié", "Jue", "Vie", "Sáb", "Dom"]
WINDOW = {"from": "2001-03-05", "to": "2001-03-11"}


async def reset_rollups(url: str) -> None:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.transaction() as conn:
            await rollups.reset(conn)
    finally:
        await db.dispose()


async def refresh_rollups(url: str) -> rollups.RefreshReport:
    """One refresher pass that seals every day up to yesterday (no grace period)."""
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        report = await rollups.refresh(db, MetricsSettings(metrics_seal_grace=0))
    finally:
        await db.dispose()
    assert report is not None
    return report


async def live_then_rollups(isolated: IsolatedMetrics, check: Callable[[], None]) -> None:
    await reset_rollups(isolated.database_url)
    check()
    report = await refresh_rollups(isolated.database_url)
    assert report.sealed_through == datetime.now(TZ).date() - timedelta(days=1)
    check()
    check()  # the second time from the item-sums memo


def heat(*cells: tuple[int, int, int]) -> list[list[int]]:
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, count in cells:
        grid[weekday][hour] = count
    return grid


def expected_window_report(shop: Shop) -> dict[str, Any]:
    forecast = [
        {
            "id": shop.cafe,
            "name": "Café",
            "sku": "7790003",
            "currentStock": 0,
            "minStock": 2,
            "unitsSold": 3,
            "dailyAverage": 0.43,
            "daysRemaining": 0,
            "rotation": 0.0,
            "status": "danger",
        },
        {
            "id": shop.azucar,
            "name": "Azúcar",
            "sku": "Sin SKU",
            "currentStock": 3,
            "minStock": 5,
            "unitsSold": 2,
            "dailyAverage": 0.29,
            "daysRemaining": 10,
            "rotation": 0.67,
            "status": "normal",
        },
        {
            "id": shop.yerba,
            "name": "Yerba",
            "sku": "7790001",
            "currentStock": 50,
            "minStock": 5,
            "unitsSold": 6,
            "dailyAverage": 0.86,
            "daysRemaining": 58,
            "rotation": 0.12,
            "status": "normal",
        },
    ]
    return {
        "kpis": {
            "revenue": 1326.0,
            "totalSales": 4,
            "avgTicket": 331.5,
            "unitsSold": 12,
            "revenueChange": 194.3,
            "salesChange": 100.0,
            "ticketChange": 47.2,
            "unitsChange": 300.0,
        },
        "salesOverTime": {
            "labels": SHORT,
            "revenue": [841.0, 0.0, 475.0, 0.0, 0.0, 0.0, 10.0],
            "sales": [2, 0, 1, 0, 0, 0, 1],
        },
        "topProducts": [
            {"id": shop.yerba, "name": "Yerba", "sku": "7790001", "units": 6, "revenue": 575.0},
            {"id": shop.cafe, "name": "Café", "sku": "7790003", "units": 3, "revenue": 240.0},
            {"id": shop.azucar, "name": "Azúcar", "sku": "Sin SKU", "units": 2, "revenue": 501.0},
            {"id": shop.te, "name": "Té", "sku": "7790004", "units": 1, "revenue": 10.0},
        ],
        "salesByWeekday": [2, 0, 1, 0, 0, 0, 1],
        "salesByHour": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        "comparison": {"current": 1326.0, "previous": 450.5},
        "alerts": {"outOfStock": 1, "lowStock": 3, "noMovement": 6},
        "insights": {
            "bestDay": {"name": "Lunes", "revenue": 841.0},
            "peakHour": 0,
            "topProduct": {"name": "Yerba", "units": 6},
            "trend": "Las ventas aumentaron 194.3% respecto al período anterior. "
            "¡Excelente trabajo!",
        },
        "vendors": [
            {
                "id": shop.ana,
                "name": "ana",
                "revenue": 1076.0,
                "salesCount": 2,
                "unitsSold": 8,
                "avgTicket": 538.0,
                "revenueChange": 438.0,
                "salesChange": 100.0,
            },
            {
                "id": shop.beto,
                "name": "beto",
                "revenue": 240.0,
                "salesCount": 1,
                "unitsSold": 3,
                "avgTicket": 240.0,
                "revenueChange": -4.2,
                "salesChange": 0.0,
            },
        ],
        "period": {"start": "2001-03-05", "end": "2001-03-11", "days": 7},
        "inventory": {"totalValue": 38966.5, "totalUnits": 208},
        "trendLine": {"labels": SHORT, "values": [None, None, 438.67, 158.33, 158.33, 0.0, 3.33]},
        "heatmap": {
            "data": heat((0, 0, 1), (0, 15, 1), (2, 10, 1), (6, 23, 1)),
            "days": SHORT,
            "hours": list(range(24)),
        },
        "inventoryForecast": forecast,
        "criticalStocks": [forecast[0]],
    }


async def test_window_report_every_field(isolated: IsolatedMetrics, shop: Shop) -> None:
    expected = expected_window_report(shop)

    def check() -> None:
        body = isolated.json("/api/metrics", **WINDOW)
        assert list(body) == list(expected)  # same keys, upstream order
        for key, value in expected.items():
            assert body[key] == value, key

    await live_then_rollups(isolated, check)


async def test_stats_every_field(isolated: IsolatedMetrics, shop: Shop) -> None:
    expected = {
        "products": 8,
        "low_stock": 3,
        "sales_today": 1,  # R2 at 00:00:00 today; R1 at 23:59:59 yesterday is not today
        "low_stock_list": [
            {"id": shop.cafe, "name": "Café", "sku": "7790003", "stock": 0},
            {"id": shop.azucar, "name": "Azúcar", "sku": None, "stock": 3},
            {"id": shop.arroz, "name": "Arroz", "sku": "7790010", "stock": 6},
            {"id": shop.sal, "name": "Sal", "sku": "7790005", "stock": 7},
        ],
        "expire_soon": 3,  # Aceite (+3 days), Leche (expired), Pan (+7); not Arroz (+8), Queso
        "total_inventory_value": 38966.5,
    }
    for role in ("vendedor", "admin", "root"):
        body = isolated.json("/api/stats", role)
        assert list(body) == list(expected)
        assert body == expected


async def test_never_sold_every_field(isolated: IsolatedMetrics, shop: Shop) -> None:
    expected = {
        "products": [
            {"id": shop.aceite, "name": "Aceite", "sku": "7790006", "stock": 100, "price": 300.0},
            {"id": shop.leche, "name": "Leche", "sku": "7790007", "stock": 12, "price": 120.0},
            {"id": shop.sal, "name": "Sal", "sku": "7790005", "stock": 7, "price": 5.0},
            {"id": shop.arroz, "name": "Arroz", "sku": "7790010", "stock": 6, "price": 40.0},
        ]
    }

    def check() -> None:
        assert isolated.json("/api/never-sold") == expected

    await live_then_rollups(isolated, check)


async def test_default_period_is_the_last_seven_business_days(
    isolated: IsolatedMetrics, shop: Shop
) -> None:
    days = [shop.today - timedelta(days=offset) for offset in range(6, -1, -1)]

    def check() -> None:
        body = isolated.json("/api/metrics")
        assert body["period"] == {
            "start": days[0].isoformat(),
            "end": shop.today.isoformat(),
            "days": 7,
        }
        assert body["salesOverTime"] == {
            "labels": [SHORT[day.weekday()] for day in days],
            "revenue": [0.0, 0.0, 0.0, 0.0, 0.0, 50.0, 200.0],
            "sales": [0, 0, 0, 0, 0, 1, 1],
        }
        assert body["kpis"] == {
            "revenue": 250.0,
            "totalSales": 2,
            "avgTicket": 125.0,
            "unitsSold": 3,
            "revenueChange": 100.0,
            "salesChange": 100.0,
            "ticketChange": 100.0,
            "unitsChange": 100.0,
        }
        assert body["insights"]["trend"] == "No hay datos del período anterior para comparar."
        assert [(v["name"], v["revenue"], v["revenueChange"]) for v in body["vendors"]] == [
            ("beto", 200.0, 100),
            ("ana", 50.0, 100),
        ]
        assert [(p["name"], p["units"]) for p in body["topProducts"]] == [("Yerba", 2), ("Pan", 1)]
        assert [(f["name"], f["daysRemaining"]) for f in body["inventoryForecast"]] == [
            ("Yerba", 175),
            ("Pan", 210),
        ]
        assert body["salesByHour"][0] == 1 and body["salesByHour"][23] == 1

    await live_then_rollups(isolated, check)


async def test_a_sale_one_second_old_is_counted(isolated: IsolatedMetrics, shop: Shop) -> None:
    wait_clear_of_midnight(margin=5)
    await refresh_rollups(isolated.database_url)
    sale = create_sale(
        isolated.database_url,
        datetime.now(TZ) - timedelta(seconds=1),
        (shop.ana, "ana"),
        [Line(shop.yerba, "Yerba", 1, "100.00")],
    )
    try:
        assert isolated.json("/api/stats")["sales_today"] == 2
        body = isolated.json("/api/metrics", period="1")
        assert body["kpis"]["totalSales"] == 2
        assert body["kpis"]["revenue"] == 300.0
        assert body["period"]["days"] == 1
        assert [(v["name"], v["revenue"]) for v in body["vendors"]] == [
            ("beto", 200.0),
            ("ana", 100.0),
        ]
    finally:
        delete_sales(isolated.database_url, [sale])


async def test_fourteen_day_window_labels_and_moving_average(
    isolated: IsolatedMetrics, shop: Shop
) -> None:
    def check() -> None:
        body = isolated.json("/api/metrics", **{"from": "2001-03-01", "to": "2001-03-14"})
        labels = [f"{day:02d}/03" for day in range(1, 15)]
        assert body["salesOverTime"] == {
            "labels": labels,
            "revenue": [
                0.0,
                0.0,
                0.0,
                200.0,
                841.0,
                0.0,
                475.0,
                0.0,
                0.0,
                0.0,
                10.0,
                100.0,
                0.0,
                0.0,
            ],
            "sales": [0, 0, 0, 1, 2, 0, 1, 0, 0, 0, 1, 1, 0, 0],
        }
        assert body["trendLine"] == {
            "labels": labels,
            "values": [None] * 6 + [216.57, 216.57, 216.57, 216.57, 189.43, 83.57, 83.57, 15.71],
        }
        # Previous window 2001-02-15 .. 2001-02-28: S0 (100.00) and S2 (250.50).
        assert body["comparison"] == {"current": 1626.0, "previous": 350.5}
        assert body["kpis"]["revenueChange"] == 363.9
        assert body["kpis"]["totalSales"] == 6
        assert body["period"] == {"start": "2001-03-01", "end": "2001-03-14", "days": 14}

    await live_then_rollups(isolated, check)


async def test_change_rule_without_previous_sales(isolated: IsolatedMetrics, shop: Shop) -> None:
    def check() -> None:
        body = isolated.json("/api/metrics", **{"from": "2001-03-07", "to": "2001-03-07"})
        assert body["kpis"] == {
            "revenue": 475.0,
            "totalSales": 1,
            "avgTicket": 475.0,
            "unitsSold": 5,
            "revenueChange": 100.0,
            "salesChange": 100.0,
            "ticketChange": 100.0,
            "unitsChange": 100.0,
        }
        assert body["insights"]["trend"] == "No hay datos del período anterior para comparar."
        ana, beto = body["vendors"]
        # Sellers answer the integers 100 / 0 without a previous value (upstream).
        assert (ana["name"], ana["revenueChange"], ana["salesChange"]) == ("ana", 100, 100)
        assert type(ana["revenueChange"]) is int and type(ana["salesChange"]) is int
        assert (beto["revenue"], beto["revenueChange"], beto["salesChange"]) == (0.0, 0, 0)
        assert type(beto["revenueChange"]) is int
        assert body["salesOverTime"]["labels"] == ["Mié"]
        assert body["trendLine"]["values"] == [475.0]

    await live_then_rollups(isolated, check)


async def test_change_rule_with_a_fall(isolated: IsolatedMetrics, shop: Shop) -> None:
    def check() -> None:
        # 2001-03-06..07 (S5: 475.00) against 2001-03-04..05 (S1, S3, S4: 1041.00).
        body = isolated.json("/api/metrics", **{"from": "2001-03-06", "to": "2001-03-07"})
        assert body["kpis"] == {
            "revenue": 475.0,
            "totalSales": 1,
            "avgTicket": 475.0,
            "unitsSold": 5,
            "revenueChange": -54.4,
            "salesChange": -66.7,
            "ticketChange": 36.9,
            "unitsChange": -37.5,
        }
        assert body["insights"]["trend"] == (
            "Las ventas cayeron 54.4% respecto al período anterior. Se recomienda tomar acción."
        )
        assert body["comparison"] == {"current": 475.0, "previous": 1041.0}

    await live_then_rollups(isolated, check)


async def test_empty_window(isolated: IsolatedMetrics, shop: Shop) -> None:
    def check() -> None:
        body = isolated.json("/api/metrics", **{"from": "2001-06-01", "to": "2001-06-03"})
        assert body["kpis"] == {
            "revenue": 0.0,
            "totalSales": 0,
            "avgTicket": 0.0,
            "unitsSold": 0,
            "revenueChange": 0.0,
            "salesChange": 0.0,
            "ticketChange": 0.0,
            "unitsChange": 0.0,
        }
        assert body["salesOverTime"] == {
            "labels": ["Vie", "Sáb", "Dom"],
            "revenue": [0.0, 0.0, 0.0],
            "sales": [0, 0, 0],
        }
        assert body["topProducts"] == [] and body["inventoryForecast"] == []
        assert body["criticalStocks"] == []
        assert body["salesByWeekday"] == [0] * 7 and body["salesByHour"] == [0] * 24
        assert body["heatmap"]["data"] == heat()
        assert body["insights"] == {
            "bestDay": None,
            "peakHour": None,
            "topProduct": None,
            "trend": "No hay datos del período anterior para comparar.",
        }
        assert body["comparison"] == {"current": 0.0, "previous": 0.0}
        assert [
            (v["name"], v["revenue"], v["salesCount"], v["avgTicket"], v["revenueChange"])
            for v in body["vendors"]
        ] == [("ana", 0.0, 0, 0.0, 0), ("beto", 0.0, 0, 0.0, 0)]
        assert body["trendLine"]["values"] == [0.0, 0.0, 0.0]
        # Catalogue figures do not depend on the window.
        assert body["alerts"] == {"outOfStock": 1, "lowStock": 3, "noMovement": 6}

    await live_then_rollups(isolated, check)


async def test_backdated_insert_is_visible_before_and_after_the_next_refresh(
    isolated: IsolatedMetrics, shop: Shop
) -> None:
    window = {"from": "2002-05-01", "to": "2002-05-01"}
    await refresh_rollups(isolated.database_url)
    assert isolated.json("/api/metrics", **window)["kpis"]["totalSales"] == 0
    create_sale(
        isolated.database_url,
        local(2002, 5, 1, 23, 59, 59),
        (shop.ana, "ana"),
        [Line(shop.yerba, "Yerba", 2, "100.00")],
    )
    create_sale(  # the next business day: not in the window
        isolated.database_url,
        local(2002, 5, 2, 0, 0, 0),
        (shop.ana, "ana"),
        [Line(shop.yerba, "Yerba", 7, "100.00")],
    )
    for _ in range(2):  # sealed day read live (new sale id), then re-aggregated
        body = isolated.json("/api/metrics", **window)
        assert (body["kpis"]["totalSales"], body["kpis"]["revenue"]) == (1, 200.0)
        assert body["salesByHour"][23] == 1
        report = await refresh_rollups(isolated.database_url)
    assert report.redone_days == 0  # the first refresh already redid both days


async def test_edit_of_a_sealed_day_arrives_through_sale_updated(
    isolated: IsolatedMetrics, shop: Shop, redis: Redis
) -> None:
    window = {"from": "2003-07-10", "to": "2003-07-10"}
    sale = create_sale(
        isolated.database_url,
        local(2003, 7, 10, 9),
        (shop.ana, "ana"),
        [Line(shop.yerba, "Yerba", 1, "100.00")],
    )
    await refresh_rollups(isolated.database_url)
    await refresh_rollups(isolated.database_url)
    assert isolated.json("/api/metrics", **window)["kpis"]["revenue"] == 100.0

    # What the sales service does on PUT /api/sales/<id>: rewrite the lines, publish the event.
    import psycopg

    with psycopg.connect(isolated.database_url, autocommit=True) as conn:
        conn.execute("UPDATE sales.sale_lines SET quantity = 3 WHERE sale_id = %s", (sale,))
    event = new_event(
        EventType.SALE_UPDATED,
        identity=None,
        entity_type="sale",
        entity_id=sale,
        data={"sale_id": sale},
    )
    await redis.xadd(isolated.event_stream, {"event": event.to_json(), "type": event.type})
    deadline = time.monotonic() + 10
    while isolated.json("/api/metrics", **window)["kpis"]["revenue"] != 300.0:
        assert time.monotonic() < deadline, "the edit never reached the metrics"
        await asyncio.sleep(0.05)
    report = await refresh_rollups(isolated.database_url)
    assert report.redone_days == 1
    body = isolated.json("/api/metrics", **window)
    assert (body["kpis"]["revenue"], body["kpis"]["unitsSold"]) == (300.0, 3)


async def test_concurrent_reports_while_the_rollups_change(
    isolated: IsolatedMetrics, shop: Shop
) -> None:
    """Many requests racing to fill the same memo entries, while refreshes re-seal the days
    under them: every answer is the exact one."""
    from concurrent.futures import ThreadPoolExecutor

    expected = expected_window_report(shop)
    await reset_rollups(isolated.database_url)

    def fetch(_: int) -> dict[str, Any]:
        return isolated.json("/api/metrics", **WINDOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(fetch, index) for index in range(24)]
        for _ in range(3):  # new rollup versions while the requests run
            await refresh_rollups(isolated.database_url)
            await reset_rollups(isolated.database_url)
        await refresh_rollups(isolated.database_url)
        futures += [pool.submit(fetch, index) for index in range(24)]
        bodies = [future.result() for future in futures]
    for body in bodies:
        assert body == expected
