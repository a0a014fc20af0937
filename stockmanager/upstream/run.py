"""The import as one unit of work: read the file, then every service's part in ONE transaction.

All or nothing: a failure anywhere rolls every schema back. `--dry-run` runs exactly the same
work and rolls it back at the end, so its report is the report of a real run. After the commit
the metrics rollups of the imported days are rebuilt before the command returns.

The services' parts are named by import string in `stockmanager.registry.UPSTREAM_IMPORT` (this
kernel never imports a service by name); the Protocols below are what each part provides.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import psycopg

from stockmanager import registry
from stockmanager.contracts.events import ImportCounts, UpstreamImported
from stockmanager.events import Event, EventType, new_event
from stockmanager.identity import Identity
from stockmanager.timefmt import now_utc
from stockmanager.upstream.read import read_upstream
from stockmanager.upstream.records import (
    Actor,
    HistoryRecord,
    LineRecord,
    NotificationRecord,
    ProductRecord,
    SaleRecord,
    UserRecord,
)
from stockmanager.upstream.report import Report
from stockmanager.upstream.source import UpstreamFile

Conn = psycopg.AsyncConnection[Any]
UserMap = Mapping[int, tuple[int, str, str]]


class UsersPart(Protocol):
    async def importing_actor(self, conn: Conn) -> Actor: ...
    async def import_users(
        self, conn: Conn, source: str, users: Sequence[UserRecord], report: Report
    ) -> dict[int, tuple[int, str, str]]: ...
    async def write_summary(self, conn: Conn, event: Event) -> None: ...


class ProductsPart(Protocol):
    async def import_products(
        self,
        conn: Conn,
        source: str,
        products: Sequence[ProductRecord],
        actor: Actor,
        report: Report,
    ) -> dict[int, int]: ...


class SalesPart(Protocol):
    async def import_sales(
        self,
        conn: Conn,
        source: str,
        sales: Sequence[SaleRecord],
        lines: Sequence[LineRecord],
        users: UserMap,
        items: Mapping[int, int],
        report: Report,
    ) -> tuple[dict[int, int], set[int]]: ...


class NotificationsPart(Protocol):
    async def import_notifications(
        self,
        conn: Conn,
        source: str,
        notifications: Sequence[NotificationRecord],
        users: UserMap,
        report: Report,
    ) -> None: ...


class AuditPart(Protocol):
    async def import_history(
        self,
        conn: Conn,
        source: str,
        history: Sequence[HistoryRecord],
        users: UserMap,
        entities: Mapping[str, Mapping[int, int]],
        report: Report,
    ) -> None: ...


class MetricsPart(Protocol):
    async def mark_days(self, conn: Conn, days: Sequence[date]) -> None: ...
    async def rebuild(self, database_url: str) -> object: ...


def _part(name: str) -> Any:
    return importlib.import_module(registry.UPSTREAM_IMPORT[name])


async def import_upstream(
    path: Path, database_url: str, *, tz: ZoneInfo, dry_run: bool = False
) -> Report:
    started = time.monotonic()
    report = Report(path=str(path), dry_run=dry_run)
    clock = _Clock(report)
    file = UpstreamFile(path)
    try:
        report.generation = file.generation
        report.source = file.source_id()
        report.fingerprint = file.fingerprint()
        data = read_upstream(file, report, tz, now_utc())
        clock.lap("read")
    finally:
        file.close()
    source = report.source
    users = cast(UsersPart, _part("users"))
    products = cast(ProductsPart, _part("products"))
    sales = cast(SalesPart, _part("sales"))
    notifications = cast(NotificationsPart, _part("notifications"))
    audit = cast(AuditPart, _part("audit"))
    metrics = cast(MetricsPart, _part("metrics"))

    conn = await psycopg.AsyncConnection.connect(database_url)
    async with conn, conn.transaction(force_rollback=dry_run):
        await _bulk_settings(conn)
        user_map = await users.import_users(conn, source, data.users, report)
        clock.lap("users")
        # After the users: into an empty database, upstream's root is the local root.
        actor = await users.importing_actor(conn)
        item_map = await products.import_products(conn, source, data.products, actor, report)
        clock.lap("products")
        sale_map, imported = await sales.import_sales(
            conn, source, data.sales, data.lines, user_map, item_map, report
        )
        clock.lap("sales")
        await notifications.import_notifications(conn, source, data.notifications, user_map, report)
        clock.lap("notifications")
        entities = {
            "user": {u: v[0] for u, v in user_map.items()},
            "application": {u: v[0] for u, v in user_map.items()},
            "product": item_map,
            "sale": sale_map,
        }
        await audit.import_history(conn, source, data.history, user_map, entities, report)
        clock.lap("audit")
        days = sorted(
            {s.sold_at.astimezone(tz).date() for s in data.sales if s.upstream_id in imported}
        )
        await metrics.mark_days(conn, days)
        clock.lap("metrics_mark")
        report.days = len(days)
        if report.imported_anything:
            await users.write_summary(conn, summary_event(report, actor))
    clock.lap("commit")
    if days and not dry_run:
        await metrics.rebuild(database_url)
        clock.lap("metrics_rebuild")
    report.seconds = time.monotonic() - started
    return report


async def _bulk_settings(conn: Conn) -> None:
    """Settings of this transaction only, for bulk inserts into indexed tables."""
    # Trigram (GIN) index entries go to the pending list instead of the index proper (flushed
    # by autovacuum later); the default 4 MB limit flushed every few thousand sale lines.
    await conn.execute("SET LOCAL gin_pending_list_limit = '1GB'")
    await conn.execute("SET LOCAL work_mem = '64MB'")


class _Clock:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.report.phases[name] = now - self.last
        self.last = now


def summary_event(report: Report, actor: Actor) -> Event:
    identity = Identity(
        user_id=actor.user_id,
        username=actor.username,
        role=actor.role,
        request_id=f"import-upstream-{uuid.uuid4().hex[:12]}",
        ip="",
        issued_at=0.0,
    )
    problems: dict[str, int] = {}
    for problem in report.problems:
        problems[problem.rule] = problems.get(problem.rule, 0) + 1
    return new_event(
        EventType.UPSTREAM_IMPORTED,
        identity=identity,
        entity_type="upstream",
        entity_id=None,
        data=UpstreamImported(
            source=report.source,
            fingerprint=report.fingerprint,
            generation=report.generation,
            counts={
                kind: ImportCounts(
                    read=c.read,
                    imported=c.imported,
                    matched=c.matched,
                    already=c.already,
                    skipped=c.skipped,
                )
                for kind, c in report.counts.items()
            },
            problems=problems,
            ids_not_kept=len(report.id_changes),
        ),
    )
