"""GET /api/health (shallow, as upstream) and ?deep=1: every service, PostgreSQL, Redis and the
event backlog; 503 when anything is down. A service lists each replica the gateway sends requests
to: each configured URL, or each address its host name resolves to now (gateway/proxy.py).

The deep report names internal replica URLs and the event backlog, so only root sees it; anyone
else gets the verdict alone (`{"status": "Ok" | "Degraded"}`, same 200/503). An anonymous deep
check must not fan out to every replica on each call: it reuses a report at most
`health_cache_seconds` old, and concurrent callers share one check. Root always gets a fresh one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
    return {
        "status": "Ok" if not down else "Degraded",
        "down": down,
        "services": services,
        "postgres": postgres_state,
        "redis": redis_state,
        "events": events,
    }


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
