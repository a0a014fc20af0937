"""Benchmark of the metrics endpoints on a seeded shop (issue 8).

    python -m bench.metrics_bench [--requests 300] [--concurrency 4] [--explain]

Starts embedded PostgreSQL and Redis in a temporary directory (or uses DATABASE_URL/REDIS_URL),
migrates, seeds 10,000 products / 300,000 sales / 1,000,000 lines with bench.seed_shop, starts
the gateway and every service as real processes (tests/support/stack.py), waits until the metrics
refresher has aggregated every closed day, then loads `/api/stats`, `/api/metrics?period=30`,
`/api/metrics?period=365` and `/api/never-sold` through the gateway (logged in as root) and
straight to the metrics service (identity signed like the gateway does), at the given
concurrency. It also times the same reports computed without the rollups (everything live, one
request at a time) to show why they exist, and with --explain prints EXPLAIN ANALYZE of every
query of each report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import TABLE_HEADER, LoadResult, machine, run_load, signed_headers
from bench.seed_shop import Config, seed
from services.metrics import repository, rollups, service
from services.metrics.coverage import NO_COVERAGE
from services.metrics.settings import MetricsSettings
from services.metrics.window import parse_window
from stockmanager.db import Database
from stockmanager.timefmt import today
from tests.support.stack import Stack, start_stack

TARGETS = {
    "GET /api/stats": "/api/stats",
    "GET /api/metrics?period=30": "/api/metrics?period=30",
    "GET /api/metrics?period=365": "/api/metrics?period=365",
    "GET /api/never-sold": "/api/never-sold",
}
GOALS_MS = {
    "GET /api/stats": 50,
    "GET /api/metrics?period=30": 200,
    "GET /api/metrics?period=365": 400,
    "GET /api/never-sold": 200,
}


async def wait_for_rollups(database_url: str, limit_seconds: float = 600.0) -> float:
    """Seconds until the stack's refresher has sealed every closed day of the seeded sales."""
    settings = MetricsSettings()
    db = Database(database_url, pool_size=1, max_overflow=0)
    started = time.monotonic()
    try:
        while True:
            target = rollups.seal_target(
                datetime.now(settings.tz), settings.tz, settings.metrics_seal_grace
            )
            async with db.connect() as conn:
                max_id = await conn.scalar(text("SELECT coalesce(max(id), 0) FROM sales.sales"))
                state = (
                    await conn.execute(
                        text("SELECT sealed_through, sale_watermark FROM metrics.rollup_state")
                    )
                ).first()
            if (
                state is not None
                and state.sealed_through is not None
                and state.sealed_through >= target
                and state.sale_watermark >= max_id
            ):
                return time.monotonic() - started
            if time.monotonic() - started > limit_seconds:
                raise TimeoutError("the metrics rollups were not built in time")
            await asyncio.sleep(1.0)
    finally:
        await db.dispose()


async def load_all(stack: Stack, requests: int, concurrency: int) -> list[tuple[str, LoadResult]]:
    with stack.root() as root:
        cookies = {"session": root.cookies["session"]}
    service_url = stack.service_urls["metrics"][0]
    results: list[tuple[str, LoadResult]] = []
    for label, path in TARGETS.items():
        gateway = await run_load(
            f"{label} via gateway",
            lambda _i, path=path: (stack.base_url + path, {}),
            concurrency=concurrency,
            requests=requests,
            warmup=max(8, requests // 10),
            cookies=cookies,
        )
        direct = await run_load(
            f"{label} direct to service",
            lambda _i, path=path: (service_url + path, signed_headers(stack)),
            concurrency=concurrency,
            requests=requests,
            warmup=max(8, requests // 10),
        )
        results += [(label, gateway), (label, direct)]
    return results


async def time_live_reports(database_url: str, samples: int = 3) -> dict[str, float]:
    """Milliseconds (best of `samples`) of each report computed with no rollups at all."""
    settings = MetricsSettings()
    tz = settings.tz
    db = Database(database_url, pool_size=1, max_overflow=0)
    original = repository.read_coverage

    async def no_coverage(conn: Any, tz: Any) -> Any:
        return NO_COVERAGE

    repository.read_coverage = no_coverage  # type: ignore[assignment]
    timings: dict[str, float] = {}
    try:
        for period in ("30", "365"):
            window = parse_window(period=period, date_from=None, date_to=None, today=today(tz))
            best = float("inf")
            for _ in range(samples):
                started = time.perf_counter()
                async with db.connect() as conn:
                    await service.begin_snapshot(conn)
                    prepared = await service.prepare_metrics(
                        conn, window, tz, today(tz), use_memo=False
                    )
                    await prepared.run(conn)
                best = min(best, (time.perf_counter() - started) * 1000)
            timings[f"GET /api/metrics?period={period}"] = best
    finally:
        repository.read_coverage = original  # type: ignore[assignment]
        await db.dispose()
    return timings


class _Recorder:
    """Wraps a connection and records every statement a report runs."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[tuple[str, dict[str, Any]]] = []

    async def execute(self, statement: Any, params: Any = None) -> Any:
        self.statements.append((str(statement), params or {}))
        return await self.conn.execute(statement, params)

    async def scalars(self, statement: Any, params: Any = None) -> Any:
        self.statements.append((str(statement), params or {}))
        return await self.conn.scalars(statement, params)

    async def scalar(self, statement: Any, params: Any = None) -> Any:
        self.statements.append((str(statement), params or {}))
        return await self.conn.scalar(statement, params)


async def explain_reports(database_url: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of every query of each report, as served (rollups + memo)."""
    settings = MetricsSettings()
    tz = settings.tz
    db = Database(database_url, pool_size=1, max_overflow=0)
    out: list[str] = []
    reports: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "/api/stats": lambda conn: service.get_stats(conn, tz, today(tz)),
    }
    for period in ("30", "365"):
        window = parse_window(period=period, date_from=None, date_to=None, today=today(tz))

        async def metrics(conn: Any, window: Any = window) -> Any:
            prepared = await service.prepare_metrics(conn, window, tz, today(tz))
            return await prepared.run(conn)

        reports[f"/api/metrics?period={period}"] = metrics

    async def never_sold(conn: Any) -> Any:
        prepared = await service.prepare_never_sold(conn, tz, today(tz))
        return await prepared.run(conn)

    reports["/api/never-sold"] = never_sold
    try:
        for label, run in reports.items():
            async with db.connect() as conn:
                await service.begin_snapshot(conn)
                recorder = _Recorder(conn)
                await run(recorder)
                out.append(f"### {label}\n")
                for statement, params in recorder.statements:
                    plan = await conn.execute(
                        text("EXPLAIN (ANALYZE, BUFFERS) " + statement), params
                    )
                    out.append("```\n" + "\n".join(row[0] for row in plan) + "\n```\n")
    finally:
        await db.dispose()
    return "\n".join(out)


def report(results: list[tuple[str, LoadResult]], live: dict[str, float], notes: list[str]) -> str:
    lines = [f"machine: {machine()}", *notes, "", TABLE_HEADER]
    lines += [result.row() for _, result in results]
    lines += [
        "",
        "| endpoint | goal p95 ms | gateway p95 ms | direct p95 ms | gateway/direct p50 |",
        "|---|---:|---:|---:|---:|",
    ]
    by_label: dict[str, list[LoadResult]] = {}
    for label, result in results:
        by_label.setdefault(label, []).append(result)
    for label, (gateway, direct) in by_label.items():
        verdict = "ok" if gateway.p95 <= GOALS_MS[label] else "MISSED"
        lines.append(
            f"| {label} | {GOALS_MS[label]} ({verdict}) | {gateway.p95:.1f} | {direct.p95:.1f} |"
            f" {gateway.p50 / direct.p50:.2f} |"
        )
    lines += ["", "| report without rollups (live, 1 request at a time) | best ms |", "|---|---:|"]
    lines += [f"| {label} | {ms:.0f} |" for label, ms in live.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=300, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--explain", action="store_true", help="print the query plans too")
    args = parser.parse_args(argv)

    from stockmanager.cli import migrate
    from stockmanager.embedded import EmbeddedPostgres, EmbeddedRedis

    notes: list[str] = []
    with ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sm-metrics-")))
        database_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        if not database_url:
            postgres = EmbeddedPostgres(root / "postgres")
            database_url = postgres.start()
            cleanup.callback(postgres.stop)
        if not redis_url:
            redis = EmbeddedRedis(root / "redis")
            redis_url = redis.start()
            cleanup.callback(redis.stop)
        migrate(database_url)
        seeded = seed(Config(database_url=database_url))
        notes.append(
            f"seeded {seeded.products} products, {seeded.sales} sales, {seeded.lines} lines "
            f"in {seeded.seconds:.1f} s"
        )
        print(notes[-1], flush=True)
        stack = cleanup.enter_context(
            start_stack(database_url=database_url, redis_url=redis_url, log_dir=root)
        )
        built = asyncio.run(wait_for_rollups(database_url))
        notes.append(f"rollups of every closed day ready {built:.1f} s after the stack was up")
        print(notes[-1], flush=True)
        results = asyncio.run(load_all(stack, args.requests, args.concurrency))
        notes.append(f"concurrency {args.concurrency}, {args.requests} measured requests per run")
        live = asyncio.run(time_live_reports(database_url))
        print(report(results, live, notes), flush=True)
        if args.explain:
            print("\n" + asyncio.run(explain_reports(database_url)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
