"""The whole file, read and normalised under the rules (no database involved)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from stockmanager.upstream.records import UpstreamData
from stockmanager.upstream.report import Report
from stockmanager.upstream.rules_shop import read_products, read_sales
from stockmanager.upstream.rules_users import read_history, read_notifications, read_users
from stockmanager.upstream.source import UpstreamFile


def read_upstream(file: UpstreamFile, report: Report, tz: ZoneInfo, now: datetime) -> UpstreamData:
    users = read_users(file, report, now)
    user_ids = {u.upstream_id for u in users}
    products = read_products(file, report, tz, now)
    sales, lines = read_sales(file, report, tz, now, products, user_ids)
    return UpstreamData(
        users=users,
        products=products,
        sales=sales,
        lines=lines,
        notifications=read_notifications(file, report, tz, user_ids),
        history=read_history(file, report, tz, user_ids),
    )
