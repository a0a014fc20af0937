"""Time rendering and business-day arithmetic in the configured business time zone.

Everything is stored as UTC `timestamptz`; the wire shows local time as `YYYY-MM-DD HH:MM:SS`
(upstream's format), audit timestamps as ISO 8601. "Today", date filters and per-day figures all
use the same business zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def local_str(value: datetime | None, tz: ZoneInfo) -> str | None:
    if value is None:
        return None
    return value.astimezone(tz).strftime(LOCAL_FORMAT)


def iso_local(value: datetime | None, tz: ZoneInfo) -> str | None:
    if value is None:
        return None
    return value.astimezone(tz).isoformat()


def now_utc() -> datetime:
    return datetime.now(UTC)


def today(tz: ZoneInfo) -> date:
    return datetime.now(tz).date()


def parse_date(value: str) -> date:
    """A strict `YYYY-MM-DD` calendar date; ValueError otherwise."""
    if not _DATE_RE.match(value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(value)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `day` begins in the business zone."""
    return datetime.combine(day, time.min, tz).astimezone(UTC)


def day_end_exclusive(day: date, tz: ZoneInfo) -> datetime:
    return day_start(day + timedelta(days=1), tz)


def parse_date_or_timestamp(value: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """A `from`/`to` filter bound: a date (whole business day) or an ISO timestamp.

    For `end=True` a plain date means "up to the end of that day" (exclusive bound returned).
    A timestamp without offset is read in the business zone.
    """
    value = value.strip()
    if _DATE_RE.match(value):
        day = date.fromisoformat(value)
        return day_end_exclusive(day, tz) if end else day_start(day, tz)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)
