"""The pure rules of the metrics service: change rule, trend sentence, moving average, window
parsing, and the split of a request's days between rollups and live reads."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.metrics.coverage import Coverage, plan_days
from services.metrics.formulas import (
    day_labels,
    first_max_index,
    moving_average,
    pct_change,
    trend_sentence,
    vendor_change,
)
from services.metrics.window import parse_window
from stockmanager.errors import ValidationFailed

TODAY = date(2026, 11, 26)


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (Decimal("10"), Decimal("0"), 100.0),
        (Decimal("0"), Decimal("0"), 0.0),
        (Decimal("0"), Decimal("5"), -100.0),
        (Decimal("1326.00"), Decimal("450.50"), 194.3),
        (Decimal("1.0005"), Decimal("1"), 0.1),  # 0.05 rounds half away from zero
        (Decimal("0.9995"), Decimal("1"), -0.1),
        (7, 3, 133.3),
    ],
)
def test_change_rule(current: Decimal, previous: Decimal, expected: float) -> None:
    assert pct_change(current, previous) == expected


def test_seller_change_rule_answers_integers_without_previous_value() -> None:
    assert vendor_change(Decimal("5"), Decimal("0")) == 100
    assert type(vendor_change(Decimal("5"), Decimal("0"))) is int
    assert type(vendor_change(0, 0)) is int and vendor_change(0, 0) == 0
    assert vendor_change(Decimal("3"), Decimal("2")) == 50.0


@pytest.mark.parametrize(
    ("change", "previous", "sentence"),
    [
        (
            12.5,
            Decimal("1"),
            "Las ventas aumentaron 12.5% respecto al período anterior. ¡Excelente trabajo!",
        ),
        (
            10.0,
            Decimal("1"),
            "Las ventas aumentaron 10.0% respecto al período anterior. Buen progreso.",
        ),
        (
            0.1,
            Decimal("1"),
            "Las ventas aumentaron 0.1% respecto al período anterior. Buen progreso.",
        ),
        (
            0.0,
            Decimal("1"),
            "Las ventas disminuyeron 0.0% respecto al período anterior. "
            "Considera revisar tu estrategia.",
        ),
        (
            -9.9,
            Decimal("1"),
            "Las ventas disminuyeron 9.9% respecto al período anterior. "
            "Considera revisar tu estrategia.",
        ),
        (
            -10.0,
            Decimal("1"),
            "Las ventas cayeron 10.0% respecto al período anterior. Se recomienda tomar acción.",
        ),
        (100.0, Decimal("0"), "No hay datos del período anterior para comparar."),
    ],
)
def test_trend_sentence(change: float, previous: Decimal, sentence: str) -> None:
    assert trend_sentence(change, previous) == sentence


def test_moving_average_window_and_leading_nulls() -> None:
    values = [Decimal(v) for v in ("1", "2", "3", "4", "5", "6", "7", "8")]
    assert moving_average(values, 8) == [None, None, None, 2.5, 3.5, 4.5, 5.5, 6.5]  # w = 4
    assert moving_average(values[:1], 1) == [1.0]  # w = max(1, 0) = 1
    assert moving_average(values[:3], 3) == [1.0, 2.0, 3.0]  # w = 1
    thirty = [Decimal(1)] * 30
    assert moving_average(thirty, 30)[:7] == [None] * 6 + [1.0]  # w capped at 7


def test_labels_and_first_maximum() -> None:
    week = [date(2001, 3, 5) + timedelta(days=offset) for offset in range(7)]
    assert day_labels(week) == ["Lun", "Mar", "Mié", "Jue", "Vie", "Sáb", "Dom"]
    assert day_labels([*week, date(2001, 3, 12)])[-1] == "12/03"
    assert first_max_index([0, 3, 1, 3]) == 1
    assert first_max_index([0, 0]) is None


def test_window_parsing() -> None:
    window = parse_window(period=None, date_from=None, date_to=None, today=TODAY)
    assert (window.start, window.end, window.days) == (date(2026, 11, 20), TODAY, 7)
    assert window.previous.start == date(2026, 11, 13)
    assert window.previous.end == date(2026, 11, 19)
    window = parse_window(period="1", date_from=None, date_to=None, today=TODAY)
    assert (window.start, window.end) == (TODAY, TODAY)
    window = parse_window(period=" 30 ", date_from="", date_to=None, today=TODAY)
    assert window.days == 30
    window = parse_window(period="x", date_from="2024-02-28", date_to="2024-03-01", today=TODAY)
    assert (window.days, window.previous.start) == (3, date(2024, 2, 25))
    for period in ("0", "-1", "1.5", "abc", "3661", "1e3"):
        with pytest.raises(ValidationFailed):
            parse_window(period=period, date_from=None, date_to=None, today=TODAY)
    for bad in ("2024-02-30", "2024-2-3", "20240203", "2024-02-03x", "２０２４-02-03"):
        with pytest.raises(ValidationFailed):
            parse_window(period=None, date_from=bad, date_to="2024-03-01", today=TODAY)
    with pytest.raises(ValidationFailed):  # would need a previous window before year 1
        parse_window(period=None, date_from="0001-01-01", date_to="0001-01-05", today=TODAY)
    with pytest.raises(ValidationFailed):
        parse_window(period=None, date_from="9999-12-31", date_to="9999-12-31", today=TODAY)


def test_plan_splits_covered_and_live_days() -> None:
    sealed = date(2026, 11, 25)
    coverage = Coverage(sealed_through=sealed, excluded=frozenset({date(2026, 11, 10)}))
    plan = plan_days(date(2026, 10, 15), TODAY, coverage)
    assert plan.covered == [(date(2026, 10, 15), date(2026, 11, 9)), (date(2026, 11, 11), sealed)]
    assert plan.live == [(date(2026, 11, 10), date(2026, 11, 10)), (TODAY, TODAY)]
    months, rest = plan.split_months()
    assert months == []  # neither October nor November is covered whole
    assert rest == plan.covered
    plan = plan_days(date(2026, 8, 31), TODAY, coverage)
    months, rest = plan.split_months()
    assert months == [date(2026, 9, 1), date(2026, 10, 1)]
    assert rest == [
        (date(2026, 8, 31), date(2026, 8, 31)),
        (date(2026, 11, 1), date(2026, 11, 9)),
        (date(2026, 11, 11), sealed),
    ]
    nothing = plan_days(date(2026, 8, 31), TODAY, Coverage())
    assert nothing.covered == [] and nothing.live == [(date(2026, 8, 31), TODAY)]
    future = plan_days(date(2026, 12, 1), date(2026, 12, 31), coverage)
    assert future.covered == [] and future.live == [(date(2026, 12, 1), date(2026, 12, 31))]
