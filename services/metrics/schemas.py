"""Wire shapes of the metrics service (upstream's field names: snake_case in `/api/stats`,
camelCase in `/api/metrics`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from services.metrics.formulas import (
    NO_SKU,
    WEEKDAY_SHORT,
    forecast_status,
    money,
    ratio2,
    round2,
    vendor_change,
)


def stats_response(row: Any) -> dict[str, Any]:
    return {
        "products": row.products,
        "low_stock": row.low_stock,
        "sales_today": row.sales_today,
        "low_stock_list": row.low_stock_list,
        "expire_soon": row.expire_soon,
        "total_inventory_value": round2(Decimal(row.inventory_value)),
    }


def never_sold_entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "sku": row.barcode,
        "stock": row.quantity,
        "price": row.price,
    }


def top_product_entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "sku": row.barcode or NO_SKU,
        "units": int(row.units),
        "revenue": money(row.revenue_cents),
    }


def forecast_entry(row: Any, days: int) -> dict[str, Any]:
    units = int(row.units)
    stock = int(row.quantity)
    days_remaining = stock * days // units
    return {
        "id": row.id,
        "name": row.name,
        "sku": row.barcode or NO_SKU,
        "currentStock": stock,
        "minStock": row.min_quantity,
        "unitsSold": units,
        "dailyAverage": ratio2(units, days),
        "daysRemaining": days_remaining,
        "rotation": ratio2(units, stock),
        "status": forecast_status(days_remaining),
    }


def vendor_entry(user_id: int, username: str, current: Any, previous: Any) -> dict[str, Any]:
    """A seller's figures; `current` / `previous` have revenue_cents, sales and units."""
    revenue = money(current.revenue_cents)
    return {
        "id": user_id,
        "name": username,
        "revenue": revenue,
        "salesCount": current.sales,
        "unitsSold": current.units,
        "avgTicket": ratio2(revenue, current.sales),
        "revenueChange": vendor_change(revenue, money(previous.revenue_cents)),
        "salesChange": vendor_change(current.sales, previous.sales),
    }


def period_entry(start: date, end: date, days: int) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "days": days}


def heatmap_entry(grid: list[list[int]]) -> dict[str, Any]:
    return {"data": grid, "days": list(WEEKDAY_SHORT), "hours": list(range(24))}
