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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import (
    TABLE_HEADER,
    CpuMeter,
    LoadResult,
    machine,
    run_load,
    signed_headers,
)
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


@dataclass
class Run:
    endpoint: str
    route: str  # "gateway" or "direct"
    result: LoadResult
    cpu_ms: dict[str, float]  # CPU per request by process (warm-up requests included)
    load: float  # 1-minute load average at the end of the run


async def load_all(stack: Stack, meter: CpuMeter, requests: int, concurrency: int) -> list[Run]:
    with stack.root() as root:
        cookies = {"session": root.cookies["session"]}
    service_url = stack.service_urls["metrics"][0]
    warmup = max(8, requests // 10)
    runs: list[Run] = []
    for label, path in TARGETS.items():
        for route in ("gateway", "direct"):
            if route == "gateway":
                make = lambda _i, path=path: (stack.base_url + path, {})  # noqa: E731
                jar: dict[str, str] | None = cookies
            else:
                make = lambda _i, path=path: (service_url + path, signed_headers(stack))  # noqa: E731
                jar = None
            before = meter.sample()
            result = await run_load(
                f"{label} {'via gateway' if route == 'gateway' else 'direct to service'}",
                make,
                concurrency=concurrency,
                requests=requests,
                warmup=warmup,
                cookies=jar,
            )
            cpu = CpuMeter.per_request_ms(before, meter.sample(), requests + warmup)
            runs.append(Run(label, route, result, cpu, os.getloadavg()[0]))
    return runs


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


def report(runs: list[Run], live: dict[str, float], notes: list[str]) -> str:
    lines = [f"machine: {machine()}", *notes, "", TABLE_HEADER]
    lines += [run.result.row() for run in runs]
    lines += [
        "",
        "| endpoint | goal p95 ms | gateway p95 ms | direct p95 ms | load avg during runs |",
        "|---|---:|---:|---:|---:|",
    ]
    by_endpoint: dict[str, dict[str, Run]] = {}
    for run in runs:
        by_endpoint.setdefault(run.endpoint, {})[run.route] = run
    for label, pair in by_endpoint.items():
        gateway, direct = pair["gateway"], pair["direct"]
        verdict = "ok" if gateway.result.p95 <= GOALS_MS[label] else "MISSED"
        lines.append(
            f"| {label} | {GOALS_MS[label]} ({verdict}) | {gateway.result.p95:.1f} |"
            f" {direct.result.p95:.1f} | {gateway.load:.1f} / {direct.load:.1f} |"
        )
    processes = sorted({name for run in runs for name in run.cpu_ms})
    lines += [
        "",
        "CPU per request by process, ms (from /proc; postgres = postmaster and backends). "
        "Unlike latency, this hardly depends on what else runs on the machine; 2 idle cores "
        "serve at most 2000 / total requests per second.",
        "",
        "| run | " + " | ".join(processes) + " | total |",
        "|---|" + "---:|" * (len(processes) + 1),
    ]
    for run in runs:
        cells = " | ".join(f"{run.cpu_ms.get(name, 0.0):.2f}" for name in processes)
        lines.append(f"| {run.result.label} | {cells} | **{sum(run.cpu_ms.values()):.2f}** |")
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
        server_pids: dict[str, tuple[int, bool]] = {}
        if not database_url:
            postgres = EmbeddedPostgres(root / "postgres")
            database_url = postgres.start()
            cleanup.callback(postgres.stop)
            if postgres.pid:
                server_pids["postgres"] = (postgres.pid, True)
        if not redis_url:
            redis = EmbeddedRedis(root / "redis")
            redis_url = redis.start()
            cleanup.callback(redis.stop)
            if redis.pid:
                server_pids["redis"] = (redis.pid, False)
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
        meter = CpuMeter(
            {
                **{
                    name: (pid, False)
                    for name in ("gateway", "metrics")
                    if (pid := stack.supervisor.pid(name))
                },
                **server_pids,
            }
        )
        results = asyncio.run(load_all(stack, meter, args.requests, args.concurrency))
        notes.append(f"concurrency {args.concurrency}, {args.requests} measured requests per run")
        live = asyncio.run(time_live_reports(database_url))
        print(report(results, live, notes), flush=True)
        if args.explain:
            print("\n" + asyncio.run(explain_reports(database_url)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
