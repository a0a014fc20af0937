"""Wire shapes of the metrics service (upstream's field names: snake_case in `/api/stats`,
camelCase in `/api/metrics`).

The builders below (and service.build_metrics) make the bodies the endpoints send; the response
models document exactly those bodies, nullable where a value can be null (e.g. on an empty
database), and the tests check real answers against them. Money is a JSON number with at most
two decimals; percentage changes have one.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.metrics.formulas import (
    NO_SKU,
    WEEKDAY_SHORT,
    forecast_status,
    money,
    ratio2,
    vendor_change,
)
from stockmanager.contracts.fields import money as round2

# --------------------------------------------------------------------------------- responses

Money = Annotated[float, Field(description="Money, at most 2 decimals")]
Change = Annotated[
    float,
    Field(description="% change against the previous window, 1 decimal; 100 or 0 without one"),
]
Count = Annotated[int, Field(ge=0)]
Weekday = Literal["Lunes", "Martes", "Miércoles", "Jueves", "Viernes", "Sábado", "Domingo"]
WeekdayShort = Literal["Lun", "Mar", "Mié", "Jue", "Vie", "Sáb", "Dom"]
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LowStockProduct(_Response):
    id: int
    name: str
    sku: str | None = Field(description="The barcode; null without one")
    stock: int


class Stats(_Response):
    """Dashboard counters over active products."""

    products: Count = Field(description="Active products")
    low_stock: Count = Field(description="Active products with 0 < quantity <= min_quantity")
    sales_today: Count = Field(description="Sales dated today (business time zone)")
    low_stock_list: list[LowStockProduct] = Field(
        description="Up to 10 active products with quantity <= min_quantity, by quantity, id"
    )
    expire_soon: Count = Field(
        description="Active products expiring within 7 days, already expired included"
    )
    total_inventory_value: Money


class NeverSoldProduct(_Response):
    id: int
    name: str
    sku: str | None = Field(description="The barcode; null without one")
    stock: int
    price: Money


class NeverSold(_Response):
    """Active products without any sale line, by quantity descending, then id."""

    products: list[NeverSoldProduct]


class Kpis(_Response):
    revenue: Money
    totalSales: Count
    avgTicket: Money = Field(description="revenue / totalSales, 0 without sales")
    unitsSold: Count
    revenueChange: Change
    salesChange: Change
    ticketChange: Change
    unitsChange: Change


class SalesOverTime(_Response):
    """One entry per day of the window (zero-filled)."""

    labels: list[str] = Field(description="`Lun`..`Dom` for windows of up to 7 days, else `dd/mm`")
    revenue: list[Money]
    sales: list[Count]


class TopProduct(_Response):
    id: int
    name: str
    sku: str = Field(description="The barcode, or `Sin SKU`")
    units: Count
    revenue: Money


class Comparison(_Response):
    current: Money
    previous: Money


class Alerts(_Response):
    outOfStock: Count
    lowStock: Count
    noMovement: Count = Field(description="Active products without a sale in the last 30 days")


class BestDay(_Response):
    name: Weekday
    revenue: Money


class TopProductInsight(_Response):
    name: str
    units: Count


class Insights(_Response):
    bestDay: BestDay | None = Field(description="The weekday with most sales; null without sales")
    peakHour: Annotated[int, Field(ge=0, le=23)] | None = Field(
        description="The hour with most sales; null without sales"
    )
    topProduct: TopProductInsight | None = Field(description="topProducts[0]; null without one")
    trend: str


class Vendor(_Response):
    id: int
    name: str
    revenue: Money
    salesCount: Count
    unitsSold: Count
    avgTicket: Money
    revenueChange: Change
    salesChange: Change


class Period(_Response):
    start: str = Field(pattern=ISO_DATE, description="First day, YYYY-MM-DD")
    end: str = Field(pattern=ISO_DATE, description="Last day, YYYY-MM-DD")
    days: Annotated[int, Field(ge=1)]


class Inventory(_Response):
    totalValue: Money
    totalUnits: int


class TrendLine(_Response):
    labels: list[str]
    values: list[float | None] = Field(
        description="Moving average of the daily revenue; null for the first w - 1 days"
    )


class Heatmap(_Response):
    data: list[list[Count]] = Field(description="data[weekday][hour]: sales, Monday = 0")
    days: list[WeekdayShort]
    hours: list[Annotated[int, Field(ge=0, le=23)]]


class ForecastProduct(_Response):
    id: int
    name: str
    sku: str = Field(description="The barcode, or `Sin SKU`")
    currentStock: int
    minStock: int
    unitsSold: Count
    dailyAverage: float
    daysRemaining: int
    rotation: float
    status: Literal["danger", "warning", "normal"]


class Metrics(_Response):
    """The analytics report of a window of business days (docs/api/metrics.md)."""

    kpis: Kpis
    salesOverTime: SalesOverTime
    topProducts: list[TopProduct] = Field(description="Up to 10, most units first")
    salesByWeekday: list[Count] = Field(description="7 counts of sales, Monday first")
    salesByHour: list[Count] = Field(description="24 counts of sales by business hour")
    comparison: Comparison
    alerts: Alerts
    insights: Insights
    vendors: list[Vendor] = Field(description="Every active user, by revenue descending, id")
    period: Period
    inventory: Inventory
    trendLine: TrendLine
    heatmap: Heatmap
    inventoryForecast: list[ForecastProduct] = Field(
        description="Up to 20 active products sold in the window, soonest out of stock first"
    )
    criticalStocks: list[ForecastProduct] = Field(
        description="The inventoryForecast entries with status `danger`"
    )


# ---------------------------------------------------------------------------------- builders


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
