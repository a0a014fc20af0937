"""GET /api/health (shallow, as upstream) and ?deep=1: every service, PostgreSQL, Redis and the
event backlog; 503 when anything is down. A service lists each replica the gateway sends requests
to: each configured URL, or each address its host name resolves to now (gateway/proxy.py).

The deep report names internal replica URLs and the event backlog, so only root sees it; anyone
else gets the verdict alone (`{"status": "Ok" | "Degraded"}`, same 200/503). An anonymous deep
check must not fan out to every replica on each call: it reuses a report at most
`health_cache_seconds` old, and concurrent callers share one check. Root always gets a fresh one.

Under `stockmanager up` the supervisor keeps the state of every process it runs (pid, state,
restarts, last exit code; the embedded PostgreSQL and Redis included) in a JSON file whose path
the gateway gets as STOCKMANAGER_SUPERVISOR_STATUS_FILE: the deep report adds it as `processes`,
and `/metrics` exports it (`stockmanager_process_restarts_total`, `stockmanager_process_up`)
next to `stockmanager_upstream_replica_up` (from the deep check). Elsewhere (Kubernetes,
compose) the orchestrator restarts processes and reports that itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.responses import Response

from gateway.runtime import GatewayRuntime, RequestContext
from stockmanager.http import json_response
from stockmanager.identity import ROLE_ROOT


class DeepHealthCache:
    """The latest deep report of this process, reused for `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.report: dict[str, Any] | None = None
        self.checked_at = 0.0
        self.lock = asyncio.Lock()

    async def get(self, runtime: GatewayRuntime, *, fresh: bool = False) -> dict[str, Any]:
        async with self.lock:  # concurrent callers wait for one check instead of starting more
            recent = time.monotonic() - self.checked_at < self.ttl
            if self.report is None or fresh or not recent:
                self.report = await deep_health(runtime)
                self.checked_at = time.monotonic()
            return self.report


async def health(ctx: RequestContext) -> Response:
    deep = ctx.request.query_params.get("deep", "").lower() in ("1", "true", "yes")
    if not deep:
        return json_response({"status": "Ok"})
    is_root = ctx.session is not None and ctx.session.role == ROLE_ROOT
    cache: DeepHealthCache = ctx.request.app.state.deep_health
    report = await cache.get(ctx.runtime, fresh=is_root)
    status_code = 200 if report["status"] == "Ok" else 503
    if not is_root:
        return json_response({"status": report["status"]}, status_code=status_code)
    return json_response(report, status_code=status_code)


async def deep_health(runtime: GatewayRuntime) -> dict[str, Any]:
    names = list(runtime.proxy.upstreams)
    probes = await asyncio.gather(*(runtime.proxy.probe(name) for name in names))
    services: dict[str, Any] = {}
    down: list[str] = []
    for name, replicas in zip(names, probes, strict=True):
        up = any(state == "ok" for state in replicas.values())
        services[name] = {"status": "ok" if up else "down", "replicas": replicas}
        if not up:
            down.append(name)
    try:
        await asyncio.wait_for(runtime.redis.ping(), 2.0)
        redis_state = "ok"
        events = await consumer_lags(runtime.redis, runtime.settings.event_stream)
    except Exception as exc:  # noqa: BLE001 - reported in the output
        redis_state = f"down: {type(exc).__name__}"
        events = {}
        down.append("redis")
    # Services report PostgreSQL reachability in their readiness checks; the gateway has no DB.
    postgres_state = (
        "ok"
        if any(state == "ok" for replicas in probes for state in replicas.values())
        else "unknown"
    )
    if postgres_state != "ok":
        down.append("postgres")
    report: dict[str, Any] = {
        "status": "Ok" if not down else "Degraded",
        "down": down,
        "services": services,
        "postgres": postgres_state,
        "redis": redis_state,
        "events": events,
    }
    processes = supervisor_status(getattr(runtime.settings, "supervisor_status_file", ""))
    if processes is not None:
        report["processes"] = processes
    return report


def supervisor_status(path: str) -> dict[str, Any] | None:
    """The supervisor's view of its processes (`up` only): name -> pid, state, restarts,
    last_exit_code. None without a status file; every state is `unknown` once the supervisor
    that wrote it is gone (the file is then only history)."""
    if not path:
        return None
    try:
        document = json.loads(Path(path).read_text())
        processes: dict[str, Any] = document["processes"]
        supervisor = int(document["supervisor_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(supervisor):
        for entry in processes.values():
            entry["state"] = "unknown"
    return processes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Snapshot(Collector):
    """Metrics computed per scrape from the supervisor's file and the latest deep check."""

    def __init__(self, processes: dict[str, Any] | None, report: dict[str, Any] | None) -> None:
        self.processes = processes
        self.report = report

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        if self.processes is not None:
            restarts = CounterMetricFamily(
                "stockmanager_process_restarts",
                "Restarts of a process by the supervisor of `stockmanager up`",
                labels=["process"],
            )
            up = GaugeMetricFamily(
                "stockmanager_process_up",
                "1 while the supervisor of `stockmanager up` has the process running",
                labels=["process"],
            )
            for name, entry in sorted(self.processes.items()):
                restarts.add_metric([name], float(entry.get("restarts", 0)))
                up.add_metric([name], 1.0 if entry.get("state") == "running" else 0.0)
            yield restarts
            yield up
        if self.report is not None:
            replica_up = GaugeMetricFamily(
                "stockmanager_upstream_replica_up",
                "1 if the replica answered its readiness check in the gateway's latest deep check",
                labels=["service", "replica"],
            )
            for service, entry in sorted(self.report.get("services", {}).items()):
                for replica, state in sorted(entry.get("replicas", {}).items()):
                    replica_up.add_metric([service, replica], 1.0 if state == "ok" else 0.0)
            yield replica_up


async def availability_metrics(runtime: GatewayRuntime, cache: DeepHealthCache) -> bytes:
    """Exposition text of the process and replica metrics (see the module docstring); the
    replica probes are the deep check's, so scrapes share its cache."""
    try:
        report: dict[str, Any] | None = await asyncio.wait_for(cache.get(runtime), 5.0)
    except Exception:  # noqa: BLE001 - the other metrics are still worth serving
        report = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        _Snapshot(
            supervisor_status(getattr(runtime.settings, "supervisor_status_file", "")), report
        )
    )
    return generate_latest(registry)


async def consumer_lags(redis: Redis, stream: str) -> dict[str, Any]:
    """Per consumer group: messages pending (delivered, unacknowledged) and not yet delivered."""
    try:
        length = await redis.xlen(stream)
        groups = await redis.xinfo_groups(stream)
    except Exception:  # noqa: BLE001 - no stream yet
        return {"stream_length": 0, "groups": {}}
    result: dict[str, Any] = {}
    for group in groups:
        name = redis_text(group.get("name"))
        lag = group.get("lag")
        if lag is None:  # Redis < 7 has no lag field: count what lies past last-delivered-id
            last = redis_text(group.get("last-delivered-id"))
            undelivered = await redis.xrange(stream, min=f"({last}", max="+", count=10_000)
            lag = len(undelivered or ())
        result[name] = {"pending": int(group.get("pending", 0)), "lag": int(lag)}
    return {"stream_length": int(length), "groups": result}


def redis_text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
