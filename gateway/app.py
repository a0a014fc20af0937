"""The gateway application (Starlette: the hot path needs no FastAPI machinery).

Two listeners, one application: the public one (`--port`) serves `/api` and `/healthz`; the
internal one (`STOCKMANAGER_GATEWAY_INTERNAL_HOST`/`_PORT`, bound by `stockmanager serve`) serves
`/healthz`, `/readyz` and `/metrics` for probes and Prometheus, and nothing else. A request is
told apart by the local port it arrived on. Every answer carries the security headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.dispatch import dispatch
from gateway.events import SESSION_EVENTS, EventPublisher, session_event_handler
from gateway.health import DeepHealthCache, availability_metrics, consumer_lags
from gateway.proxy import ServiceProxy
from gateway.ratelimit import LoginRateLimiter
from gateway.routes import ROUTE_MAP, RouteTable
from gateway.runtime import GatewayRuntime
from gateway.session_cache import SessionCache
from gateway.sessions import SessionStore
from gateway.settings import GatewaySettings, gateway_settings
from gateway.streams import StreamLimits
from stockmanager.error_handlers import error_for_http_status, render
from stockmanager.errors import NotFound
from stockmanager.events.consumer import EventConsumer
from stockmanager.gc_tuning import freeze_after_startup
from stockmanager.http import json_response
from stockmanager.logs import attach_central_shipper, configure_logging, detach_central_shipper
from stockmanager.observability import EVENT_DEAD_LETTERS, EVENT_LAG, RequestContextMiddleware
from stockmanager.registry import service_names
from stockmanager.service_app import redis_client

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(error_for_http_status(exc.status_code, exc.detail))


HSTS = b"max-age=31536000; includeSubDomains"
FRAME_ANCESTORS = b"frame-ancestors 'none'"


class SecurityHeaders:
    """Headers every gateway answer carries (local, proxied and error answers alike):
    `nosniff`, no referrer, no framing (a stricter CSP set by a handler, e.g. /api/docs, is
    kept), `Cache-Control: no-store` on JSON and on anything that sets no caching policy of its
    own, and HSTS when the session cookie is `Secure` (the site is served over HTTPS)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.secured(list(message.get("headers", [])))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def secured(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # One pass over the answer's headers (this runs for every request); the policy headers
        # are set aside and put back, or replaced, at the end.
        kept: list[tuple[bytes, bytes]] = []
        csp: list[tuple[bytes, bytes]] = []
        cache_control: list[tuple[bytes, bytes]] = []
        content_type = b""
        hsts_present = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in _REPLACED:
                continue
            if lowered == b"content-security-policy":
                csp.append((name, value))
                continue
            if lowered == b"cache-control":
                cache_control.append((name, value))
                continue
            if lowered == b"content-type":
                content_type = value
            elif lowered == b"strict-transport-security":
                hsts_present = True
            kept.append((name, value))
        kept += _ALWAYS
        if not csp:
            kept.append((b"content-security-policy", FRAME_ANCESTORS))
        elif b"frame-ancestors" not in csp[-1][1]:
            kept.append((b"content-security-policy", csp[-1][1] + b"; " + FRAME_ANCESTORS))
        else:
            kept += csp
        if not cache_control or b"json" in content_type.lower():
            kept.append((b"cache-control", b"no-store"))
        else:
            kept += cache_control
        if self.hsts and not hsts_present:
            kept.append((b"strict-transport-security", HSTS))
        return kept


# Set by SecurityHeaders whatever the answer said.
_REPLACED = frozenset({b"x-content-type-options", b"referrer-policy"})
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def create_app(settings: GatewaySettings | None = None) -> Starlette:
    settings = settings or gateway_settings()
    configure_logging("gateway", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = redis_client(settings.redis_url)
        proxy = ServiceProxy(
            {name: settings.service_urls(name) for name in service_names()},
            timeout=settings.upstream_timeout,
            connect_timeout=settings.upstream_connect_timeout,
            down_seconds=settings.replica_down_seconds,
            pool_limit=settings.upstream_pool_limit,
            stream_pool_limit=settings.sse_max_streams,
            dns_refresh=settings.upstream_dns_refresh_seconds,
        )
        await proxy.open()
        session_cache = SessionCache(settings.session_cache_seconds)
        sessions = SessionStore(
            redis,
            idle_timeout=settings.session_idle_timeout,
            absolute_timeout=settings.session_absolute_timeout,
            cache=session_cache,
        )
        runtime = GatewayRuntime(
            settings=settings,
            redis=redis,
            sessions=sessions,
            limiter=LoginRateLimiter(
                redis,
                max_failures=settings.login_max_failures,
                ip_max_failures=settings.login_ip_max_failures,
                window=settings.login_failure_window,
            ),
            proxy=proxy,
            routes=RouteTable(ROUTE_MAP),
            events=EventPublisher(
                redis,
                settings.event_stream,
                settings.event_stream_maxlen,
                queue_size=settings.event_queue_size,
                queue_max_bytes=settings.event_queue_max_bytes,
                event_max_bytes=settings.event_max_bytes,
            ),
        )
        runtime.consumer = EventConsumer(
            redis,
            stream=settings.event_stream,
            group="gateway",
            types=[str(t) for t in SESSION_EVENTS],
            stateless_handler=session_event_handler(sessions),
            reclaim_idle_ms=settings.event_reclaim_idle_ms,
            # Only changes from now on matter for live sessions.
            start_id="$",
        )
        app.state.gateway = runtime
        app.state.streams = StreamLimits(
            redis,
            per_user=settings.sse_max_streams_per_user,
            per_process=settings.sse_max_streams,
            check_seconds=settings.sse_session_check_seconds,
        )
        shipper = attach_central_shipper("gateway", settings.log_stream, settings.log_stream_maxlen)
        shipper.start(redis)
        session_cache.start(redis)
        runtime.events.start()
        runtime.consumer.start()
        freeze_after_startup()
        try:
            yield
        finally:
            await session_cache.stop()
            await runtime.consumer.stop()
            await runtime.events.stop()
            await shipper.stop()
            detach_central_shipper(shipper)
            await proxy.close()
            await redis.aclose()

    def internal_listener(request: Request) -> bool:
        """Whether the request came in on the internal listener (probes, Prometheus)."""
        server = request.scope.get("server")
        port = settings.gateway_internal_port
        return bool(port) and server is not None and server[1] == port

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok", "service": "gateway"})

    async def public(request: Request) -> Response:
        if internal_listener(request):
            return render(NotFound())
        return await dispatch(request)

    async def readyz(request: Request) -> Response:
        if not internal_listener(request):
            return render(NotFound())
        runtime: GatewayRuntime = request.app.state.gateway
        try:
            await asyncio.wait_for(runtime.redis.ping(), 2.0)
        except Exception as exc:  # noqa: BLE001
            return json_response(
                {"status": "unavailable", "checks": {"redis": type(exc).__name__}}, 503
            )
        return json_response({"status": "ok", "service": "gateway", "checks": {"redis": "ok"}})

    async def metrics(request: Request) -> Response:
        if not internal_listener(request):
            return render(NotFound())
        # Consumer-group lag is a property of the shared stream; the gateway reports it for all.
        runtime: GatewayRuntime = request.app.state.gateway
        with contextlib.suppress(Exception):
            lags = await asyncio.wait_for(
                consumer_lags(runtime.redis, settings.event_stream), timeout=2.0
            )
            for group, values in lags.get("groups", {}).items():
                EVENT_LAG.labels(group).set(values["lag"] + values["pending"])
        with contextlib.suppress(Exception):
            dead = await asyncio.wait_for(
                runtime.redis.xlen(settings.event_stream + ":dead"), timeout=2.0
            )
            EVENT_DEAD_LETTERS.set(int(dead))
        extra = await availability_metrics(runtime, request.app.state.deep_health)
        return Response(generate_latest() + extra, media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", public, methods=ALL_METHODS),
        ],
        # A path the catch-all cannot match (it holds a newline) still gets a JSON error.
        exception_handlers={HTTPException: _http_error},
    )
    app.state.deep_health = DeepHealthCache(settings.health_cache_seconds)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeaders, hsts=settings.cookie_secure)
    return app
