"""The formulas of upstream's `/api/metrics` (reference §5.2), on exact decimals.

Rounding is half away from zero on the exact value (upstream rounded binary floats).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

# Money to cents, half up (NUMERIC(12,2)): the kernel's one money rule.
from stockmanager.contracts.fields import money as round2

WEEKDAY_SHORT = ("Lun", "Mar", "Mié", "Jue", "Vie", "Sáb", "Dom")
WEEKDAY_LONG = ("Lunes", "Martes", "Miércoles", "Jueves", "Viernes", "Sábado", "Domingo")
NO_SKU = "Sin SKU"

CENT = Decimal("0.01")
TENTH = Decimal("0.1")


def money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def ratio2(numerator: Decimal | int, denominator: Decimal | int) -> float:
    """round(numerator / denominator, 2) as a float; 0.0 when the denominator is 0."""
    if not denominator:
        return 0.0
    return float(round2(Decimal(numerator) / Decimal(denominator)))


def pct_change(current: Decimal | int, previous: Decimal | int) -> float:
    """Upstream `calc_change`: 100.0 / 0.0 without a previous value, else the % change to 1 dp."""
    if previous == 0:
        return 100.0 if current > 0 else 0.0
    change = (Decimal(current) - Decimal(previous)) / Decimal(previous) * 100
    return float(change.quantize(TENTH, rounding=ROUND_HALF_UP))


def vendor_change(current: Decimal | int, previous: Decimal | int) -> float | int:
    """Like pct_change, but upstream's seller figures answer the integers 100 / 0."""
    if previous == 0:
        return 100 if current > 0 else 0
    return pct_change(current, previous)


def trend_sentence(revenue_change: float, previous_revenue: Decimal) -> str:
    if previous_revenue <= 0:
        return "No hay datos del período anterior para comparar."
    if revenue_change > 10:
        return (
            f"Las ventas aumentaron {revenue_change}% respecto al período anterior. "
            "¡Excelente trabajo!"
        )
    if revenue_change > 0:
        return (
            f"Las ventas aumentaron {revenue_change}% respecto al período anterior. Buen progreso."
        )
    if revenue_change > -10:
        return (
            f"Las ventas disminuyeron {abs(revenue_change)}% respecto al período anterior. "
            "Considera revisar tu estrategia."
        )
    return (
        f"Las ventas cayeron {abs(revenue_change)}% respecto al período anterior. "
        "Se recomienda tomar acción."
    )


def day_labels(days: Sequence[date]) -> list[str]:
    """Weekday abbreviations for windows of up to 7 days, `dd/mm` otherwise."""
    if len(days) <= 7:
        return [WEEKDAY_SHORT[day.weekday()] for day in days]
    return [day.strftime("%d/%m") for day in days]


def moving_average(values: Sequence[Decimal], days: int) -> list[float | None]:
    """Simple moving average over w = min(7, max(1, days // 2)) points, None before w points."""
    width = min(7, max(1, days // 2))
    out: list[float | None] = []
    running = Decimal(0)
    for index, value in enumerate(values):
        running += value
        if index >= width:
            running -= values[index - width]
        out.append(float(round2(running / width)) if index >= width - 1 else None)
    return out


def first_max_index(values: Sequence[int]) -> int | None:
    """Index of the first largest value, or None when every value is zero."""
    if not any(values):
        return None
    return max(range(len(values)), key=lambda index: (values[index], -index))


def forecast_status(days_remaining: int) -> str:
    if days_remaining <= 3:
        return "danger"
    if days_remaining <= 7:
        return "warning"
    return "normal"
