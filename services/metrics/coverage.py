"""Which days of a request come from the rollups and which are read live.

The rollups (`rollups.py`) hold the sales of closed business days up to `sealed_through`. A day
up to there is *covered* unless it is *excluded*: marked dirty by a sale edit, or holding a sale
inserted after the last refresh (a back-dated insert). Everything else (today, the days not sealed
yet, excluded days) is aggregated live from the sales views, so every answer reflects every
committed sale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from stockmanager.timefmt import day_end_exclusive, day_start

ONE_DAY = timedelta(days=1)

DayRange = tuple[date, date]  # inclusive bounds


@dataclass(frozen=True, slots=True)
class Coverage:
    sealed_through: date | None = None
    excluded: frozenset[date] = frozenset()
    version: int = 0
    # Memo entries stored for this rollup version (memo.py), as seen by the same snapshot.
    memo_keys: frozenset[str] = frozenset()


NO_COVERAGE = Coverage()


@dataclass(frozen=True, slots=True)
class DayPlan:
    """How to aggregate the business days [lo, hi]."""

    lo: date
    hi: date
    # Covered days as merged inclusive ranges (rollup reads).
    covered: list[DayRange] = field(default_factory=list)
    # Days to read live from the sales views, as merged inclusive ranges.
    live: list[DayRange] = field(default_factory=list)

    def live_instants(self, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """The live ranges as half-open UTC instants [start, end)."""
        return [(day_start(lo, tz), day_end_exclusive(hi, tz)) for lo, hi in self.live]

    def covered_instants(self, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """The covered ranges as half-open UTC instants [start, end)."""
        return [(day_start(lo, tz), day_end_exclusive(hi, tz)) for lo, hi in self.covered]

    def split_months(self) -> tuple[list[date], list[DayRange]]:
        """Covered days as whole calendar months (first days) plus the remaining day ranges."""
        months: list[date] = []
        rest: list[DayRange] = []
        for lo, hi in self.covered:
            cursor = lo
            while cursor <= hi:
                month_start = cursor.replace(day=1)
                month_end = next_month(month_start) - ONE_DAY
                if cursor == month_start and month_end <= hi:
                    months.append(month_start)
                    cursor = month_end + ONE_DAY
                    continue
                stop = min(hi, month_end)
                if rest and rest[-1][1] + ONE_DAY == cursor:
                    rest[-1] = (rest[-1][0], stop)
                else:
                    rest.append((cursor, stop))
                cursor = stop + ONE_DAY
        return months, rest


def next_month(first_day: date) -> date:
    if first_day.month == 12:
        return date(first_day.year + 1, 1, 1)
    return date(first_day.year, first_day.month + 1, 1)


def plan_days(lo: date, hi: date, coverage: Coverage) -> DayPlan:
    if hi < lo:
        return DayPlan(lo, hi)
    sealed = coverage.sealed_through
    covered: list[DayRange] = []
    live: list[DayRange] = []
    if sealed is not None and lo <= sealed:
        top = min(hi, sealed)
        excluded = sorted(day for day in coverage.excluded if lo <= day <= top)
        live.extend((day, day) for day in excluded)
        covered = subtract_days((lo, top), excluded)
    tail_lo = lo if sealed is None else max(lo, sealed + ONE_DAY)
    if tail_lo <= hi:
        live.append((tail_lo, hi))
    return DayPlan(lo, hi, covered=covered, live=merge_ranges(live))


def subtract_days(span: DayRange, days: Iterable[date]) -> list[DayRange]:
    """`span` without the given days, as merged inclusive ranges."""
    lo, hi = span
    out: list[DayRange] = []
    cursor = lo
    for day in sorted(set(days)):
        if day < cursor or day > hi:
            continue
        if day > cursor:
            out.append((cursor, day - ONE_DAY))
        cursor = day + ONE_DAY
    if cursor <= hi:
        out.append((cursor, hi))
    return out


def merge_ranges(ranges: Sequence[DayRange]) -> list[DayRange]:
    merged: list[DayRange] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + ONE_DAY:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged
