"""The reporting window of `/api/metrics` and its comparison window.

Upstream: `period` days ending today (default 7), or `from`..`to` when both are given; the
previous window has the same length and ends the day before the current one starts. Days are
business-time-zone calendar days. Choices where upstream is silent or broken (docs/api/metrics.md):

- a malformed `from`/`to` (not a real `YYYY-MM-DD` date) is 400, never a 500;
- `from` after `to` is 400;
- only `from`: the window runs from it to today; only `to`: `period` days ending on it;
- `period` must be an integer from 1 to MAX_DAYS (400 otherwise; upstream silently used 7 for a
  non-integer and broke on zero or negative values); it is ignored when both dates are given;
- no window may be longer than MAX_DAYS days (400).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from stockmanager.contracts.fields import lenient_int
from stockmanager.errors import ValidationFailed
from stockmanager.timefmt import parse_date

DEFAULT_PERIOD = 7
MAX_DAYS = 3660  # ten years of daily points is already more than a chart can show

INVALID_DATE = "Fecha inválida: use el formato YYYY-MM-DD"
INVALID_PERIOD = f"El período debe ser un número entero de días entre 1 y {MAX_DAYS}"
FROM_AFTER_TO = "La fecha 'from' no puede ser posterior a 'to'"
RANGE_TOO_LONG = f"El rango de fechas no puede superar {MAX_DAYS} días"
OUT_OF_RANGE = "Rango de fechas fuera de los límites admitidos"


@dataclass(frozen=True, slots=True)
class Window:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> Window:
        return Window(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range(self.days)]


def _date_param(value: str | None) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return parse_date(value.strip())
    except ValueError as exc:
        raise ValidationFailed(INVALID_DATE) from exc


def _period_param(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_PERIOD
    period = lenient_int(value)  # the kernel's integer rule ("²" or "+-5" are not integers)
    if period is None or not 1 <= period <= MAX_DAYS:
        raise ValidationFailed(INVALID_PERIOD)
    return period


def parse_window(
    *, period: str | None, date_from: str | None, date_to: str | None, today: date
) -> Window:
    start = _date_param(date_from)
    end = _date_param(date_to)
    if start is None or end is None:
        days = _period_param(period)
        end = end or today
        if start is None:
            start = _shift(end, -(days - 1))
    if start > end:
        raise ValidationFailed(FROM_AFTER_TO)
    window = Window(start, end)
    if window.days > MAX_DAYS:
        raise ValidationFailed(RANGE_TOO_LONG)
    _shift(start, -window.days)  # the previous window and the day after must be real dates
    _shift(end, 1)
    return window


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError as exc:
        raise ValidationFailed(OUT_OF_RANGE) from exc
