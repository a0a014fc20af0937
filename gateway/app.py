"""The gateway application (Starlette: the hot path needs no FastAPI machinery)."""

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

from gateway.dispatch import dispatch
from gateway.events import SESSION_EVENTS, EventPublisher, session_event_handler
from gateway.health import consumer_lags
from gateway.proxy import ServiceProxy
from gateway.ratelimit import LoginRateLimiter
from gateway.routes import ROUTE_MAP, RouteTable
from gateway.runtime import GatewayRuntime
from gateway.sessions import SessionStore
from gateway.settings import GatewaySettings, gateway_settings
from stockmanager.error_handlers import error_for_http_status, render
from stockmanager.events.consumer import EventConsumer
from stockmanager.http import json_response
from stockmanager.logs import attach_central_shipper, configure_logging, detach_central_shipper
from stockmanager.observability import EVENT_LAG, RequestContextMiddleware
from stockmanager.registry import service_names
from stockmanager.service_app import redis_client

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(error_for_http_status(exc.status_code, exc.detail))


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
        )
        await proxy.open()
        sessions = SessionStore(
            redis,
            idle_timeout=settings.session_idle_timeout,
            absolute_timeout=settings.session_absolute_timeout,
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
        shipper = attach_central_shipper("gateway", settings.log_stream, settings.log_stream_maxlen)
        shipper.start(redis)
        runtime.events.start()
        runtime.consumer.start()
        try:
            yield
        finally:
            await runtime.consumer.stop()
            await runtime.events.stop()
            await shipper.stop()
            detach_central_shipper(shipper)
            await proxy.close()
            await redis.aclose()

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok", "service": "gateway"})

    async def readyz(request: Request) -> Response:
        runtime: GatewayRuntime = request.app.state.gateway
        try:
            await asyncio.wait_for(runtime.redis.ping(), 2.0)
        except Exception as exc:  # noqa: BLE001
            return json_response(
                {"status": "unavailable", "checks": {"redis": type(exc).__name__}}, 503
            )
        return json_response({"status": "ok", "service": "gateway", "checks": {"redis": "ok"}})

    async def metrics(request: Request) -> Response:
        # Consumer-group lag is a property of the shared stream; the gateway reports it for all.
        runtime: GatewayRuntime = request.app.state.gateway
        with contextlib.suppress(Exception):
            lags = await asyncio.wait_for(
                consumer_lags(runtime.redis, settings.event_stream), timeout=2.0
            )
            for group, values in lags.get("groups", {}).items():
                EVENT_LAG.labels(group).set(values["lag"] + values["pending"])
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", dispatch, methods=ALL_METHODS),
        ],
        # A path the catch-all cannot match (it holds a newline) still gets a JSON error.
        exception_handlers={HTTPException: _http_error},
    )
    app.add_middleware(RequestContextMiddleware)
    return app
