"""The factory every service uses: one FastAPI app with the kernel's plumbing.

It gives each service the error handler, request ids, JSON access logs, `/healthz` (alive),
`/readyz` (PostgreSQL and Redis reachable), `/metrics` (Prometheus), the identity dependencies,
a database engine and Redis client opened in the lifespan, the service's own resources, the
outbox relay and the event consumers. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from stockmanager.db import Database
from stockmanager.error_handlers import install_error_handlers
from stockmanager.errors import Forbidden, NotAuthenticated
from stockmanager.events.consumer import EventConsumer
from stockmanager.events.relay import OutboxRelay
from stockmanager.gc_tuning import freeze_after_startup
from stockmanager.http import JSONResponse, json_response
from stockmanager.identity import IDENTITY_HEADER, Identity, IdentityError, verify_identity
from stockmanager.logs import attach_central_shipper, configure_logging, detach_central_shipper
from stockmanager.observability import (
    DB_POOL_CHECKED_OUT,
    DB_POOL_SIZE,
    OUTBOX_BACKLOG,
    RequestContextMiddleware,
)
from stockmanager.settings import KernelSettings

log = logging.getLogger("stockmanager.service")


def redis_client(url: str, *, max_connections: int = 256) -> Redis:
    """A Redis client whose pool waits for a free connection instead of failing.

    redis-py's default pool raises "Too many connections" past its limit, which turned a burst
    of concurrent requests at the gateway into 500s; a blocking pool queues them (up to 5 s).
    socket_timeout must exceed the consumers' XREADGROUP block time.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_timeout=10,
        socket_connect_timeout=3,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


class ServiceResources(Protocol):
    """A service's own long-lived objects (clients, pools, background tasks).

    Opened in the lifespan after the kernel's database, Redis and log shipper, before the
    relay and the consumers start; closed after they stopped, before Redis and the database.
    """

    async def close(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=KernelSettings)
ResourcesT = TypeVar("ResourcesT", bound=ServiceResources)


class NoResources:
    """The resources of a service that has none of its own."""

    @classmethod
    async def open(cls, settings: KernelSettings, db: Database, redis: Redis) -> NoResources:
        return cls()

    async def close(self) -> None:
        return None


@dataclass
class ServiceRuntime(Generic[SettingsT, ResourcesT]):
    """Everything a service's request handlers and consumers share within one process."""

    name: str
    settings: SettingsT
    db: Database
    redis: Redis
    resources: ResourcesT
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """The request boundary's transaction; events go out right after it commits."""
        async with self.db.transaction() as conn:
            yield conn
        if self.relay is not None:
            self.relay.poke()


KernelRuntime = ServiceRuntime[KernelSettings, ServiceResources]


async def get_runtime(request: Request) -> KernelRuntime:
    runtime: KernelRuntime = request.app.state.runtime
    return runtime


def runtime_dependency(
    settings_type: type[SettingsT], resources_type: type[ResourcesT]
) -> Callable[[Request], Coroutine[Any, Any, ServiceRuntime[SettingsT, ResourcesT]]]:
    """A dependency returning the app's runtime typed as the service's own (checked)."""

    async def get_service_runtime(request: Request) -> ServiceRuntime[SettingsT, ResourcesT]:
        runtime = request.app.state.runtime
        if not (
            isinstance(runtime, ServiceRuntime)
            and isinstance(runtime.settings, settings_type)
            and isinstance(runtime.resources, resources_type)
        ):
            raise TypeError(
                f"the app's runtime is not a ServiceRuntime"
                f"[{settings_type.__name__}, {resources_type.__name__}]"
            )
        typed: ServiceRuntime[SettingsT, ResourcesT] = runtime
        return typed

    return get_service_runtime


Runtime = Annotated[KernelRuntime, Depends(get_runtime)]


async def get_identity(request: Request) -> Identity:
    """The caller as signed by the gateway. Anything else is 401.

    Dependencies are `async` on purpose: FastAPI runs plain functions in a thread pool,
    which would cost a thread hop per dependency on every request.
    """
    runtime: KernelRuntime = request.app.state.runtime
    try:
        return verify_identity(
            request.headers.get(IDENTITY_HEADER),
            runtime.settings.internal_secret,
            max_age=runtime.settings.identity_max_age,
        )
    except IdentityError as exc:
        raise NotAuthenticated() from exc


async def require_user(identity: Annotated[Identity, Depends(get_identity)]) -> Identity:
    if not identity.is_authenticated:
        raise NotAuthenticated()
    return identity


async def require_admin(identity: Annotated[Identity, Depends(require_user)]) -> Identity:
    if not identity.is_admin_or_root:
        raise Forbidden()
    return identity


async def require_root(identity: Annotated[Identity, Depends(require_user)]) -> Identity:
    if not identity.is_root:
        raise Forbidden()
    return identity


AnyCaller = Annotated[Identity, Depends(get_identity)]
CurrentUser = Annotated[Identity, Depends(require_user)]
AdminUser = Annotated[Identity, Depends(require_admin)]
RootUser = Annotated[Identity, Depends(require_root)]

# The service's event consumers, built once its runtime exists.
ConsumerFactory = Callable[[ServiceRuntime[SettingsT, ResourcesT]], list[EventConsumer]]


def create_service_app(
    name: str,
    *,
    settings: SettingsT,
    routers: Sequence[APIRouter],
    resources: Callable[[SettingsT, Database, Redis], Awaitable[ResourcesT]],
    outbox: Table | None = None,
    consumers: ConsumerFactory[SettingsT, ResourcesT] | None = None,
    measure: Callable[[ServiceRuntime[SettingsT, ResourcesT]], Awaitable[None]] | None = None,
) -> FastAPI:
    """The service's app. `resources` opens its own objects (their `close` runs at shutdown);
    `measure` sets the service's own gauges when /metrics is scraped (bounded by 2 s; a failure
    leaves them as they were, the scrape still answers)."""
    configure_logging(name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        redis = redis_client(settings.redis_url)
        relay = None
        if outbox is not None:
            relay = OutboxRelay(
                db,
                redis,
                outbox,
                stream=settings.event_stream,
                maxlen=settings.event_stream_maxlen,
                poll_interval=settings.outbox_poll_interval,
            )
        shipper = attach_central_shipper(name, settings.log_stream, settings.log_stream_maxlen)
        shipper.start(redis)
        runtime = ServiceRuntime(
            name=name,
            settings=settings,
            db=db,
            redis=redis,
            resources=await resources(settings, db, redis),
            relay=relay,
        )
        app.state.runtime = runtime
        if runtime.relay is not None:
            runtime.relay.start()
        if consumers is not None:
            runtime.consumers = consumers(runtime)
            for consumer in runtime.consumers:
                consumer.start()
        freeze_after_startup()
        log.info("service started", extra={"service": name})
        try:
            yield
        finally:
            for consumer in runtime.consumers:
                await consumer.stop()
            if runtime.relay is not None:
                await runtime.relay.stop()
            with contextlib.suppress(Exception):
                await runtime.resources.close()
            await shipper.stop()
            detach_central_shipper(shipper)
            await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title=f"StockManager {name} service",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(_ops_router(name, measure))
    # Each operation's `x-access` (read by the gateway's OpenAPI document); imported here
    # because stockmanager.access reads this module's require_* guards.
    from stockmanager.access import annotate_access

    for router in routers:
        annotate_access(router)
        app.include_router(router)
    return app


def _ops_router(name: str, measure: Callable[[Any], Awaitable[None]] | None) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return json_response({"status": "ok", "service": name})

    @router.get("/readyz", include_in_schema=False)
    async def readyz(runtime: Runtime) -> Response:
        checks = await dependency_checks(runtime)
        # Only PostgreSQL gates readiness: without Redis a service still serves reads and
        # commits writes (their events wait in the outbox), so pulling it out of rotation
        # would turn a Redis outage into a full outage. Redis state is reported all the same.
        ready = checks["postgres"] == "ok"
        return json_response(
            {"status": "ok" if ready else "unavailable", "service": name, "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics(runtime: Runtime) -> Response:
        pool = runtime.db.pool_status()
        DB_POOL_SIZE.set(pool["size"])
        DB_POOL_CHECKED_OUT.set(pool["checked_out"])
        if runtime.relay is not None:
            with contextlib.suppress(Exception):
                OUTBOX_BACKLOG.set(await asyncio.wait_for(runtime.relay.backlog(), 2.0))
        if measure is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(measure(runtime), 2.0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def dependency_checks(runtime: KernelRuntime) -> dict[str, str]:
    async def check(probe: Awaitable[Any]) -> str:
        try:
            await asyncio.wait_for(probe, timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return f"error: {type(exc).__name__}"
        return "ok"

    postgres, redis = await asyncio.gather(check(runtime.db.ping()), check(runtime.redis.ping()))
    return {"postgres": postgres, "redis": redis}
