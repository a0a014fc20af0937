"""Request context middleware: request id on every log line and response, access logs, and
Prometheus request metrics labelled by route template (never by raw path, to bound cardinality).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stockmanager.context import REQUEST_ID_HEADER, clean_request_id, request_id_var
from stockmanager.contracts.fields import clip_text

log = logging.getLogger("stockmanager.access")

HTTP_REQUESTS = Counter(
    "stockmanager_http_requests_total", "HTTP requests handled", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "stockmanager_http_request_duration_seconds",
    "HTTP request latency",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_LAG = Gauge(
    "stockmanager_event_consumer_lag",
    "Events in the stream not yet acknowledged by a consumer group",
    ["group"],
)
# Set by the gateway's /metrics from the shared stream (like EVENT_LAG): events a consumer gave up
# on (handler failed `max_attempts` times, or an invalid payload), waiting for an operator.
EVENT_DEAD_LETTERS = Gauge(
    "stockmanager_event_dead_letters", "Events in the dead-letter stream (<event stream>:dead)"
)
OUTBOX_BACKLOG = Gauge("stockmanager_outbox_backlog", "Outbox rows not yet published")
DB_POOL_CHECKED_OUT = Gauge("stockmanager_db_pool_checked_out", "DB connections in use")
DB_POOL_SIZE = Gauge("stockmanager_db_pool_size", "DB pool size")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_RID_HEADER = REQUEST_ID_HEADER.lower().encode()


def route_template(scope: Scope) -> str:
    # The gateway sets its route-map pattern; FastAPI apps expose the matched route.
    template = scope.get("route_template")
    if template:
        return str(template)
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


# (route, method, status) -> the counter and histogram children of that series. `labels()` takes
# a lock and builds a key on every call; the series are few (route templates), so each is
# looked up once per process.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    key = (route, method, status)
    found = _SERIES.get(key)
    if found is None:
        found = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_LATENCY.labels(route, method),
        )
        _SERIES[key] = found
    return found


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead, streaming responses untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope["headers"]:
            if key == _RID_HEADER:
                incoming = value.decode("latin-1")
                break
        request_id = clean_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != _RID_HEADER]
                headers.append((_RID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            requests, latency = _series(route, method, status["code"])
            requests.inc()
            latency.observe(elapsed)
            if scope["path"] not in QUIET_PATHS:
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": clip_text(scope["path"]),
                        "status": status["code"],
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)
