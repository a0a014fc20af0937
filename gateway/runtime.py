"""What the gateway's request handlers share within one process, and the per-request context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from starlette.requests import Request

from gateway.clientip import Network
from gateway.events import EventPublisher
from gateway.proxy import ServiceProxy
from gateway.ratelimit import LoginRateLimiter
from gateway.routes import Match, RouteTable, entity_type_for
from gateway.sessions import Session, SessionStore
from gateway.settings import GatewaySettings
from stockmanager.contracts.events import Payload
from stockmanager.events import Event, new_event
from stockmanager.events.consumer import EventConsumer
from stockmanager.identity import Identity


@dataclass
class GatewayRuntime:
    settings: GatewaySettings
    redis: Redis
    sessions: SessionStore
    limiter: LoginRateLimiter
    proxy: ServiceProxy
    routes: RouteTable
    events: EventPublisher
    consumer: EventConsumer | None = None
    # Parsed once from settings; read on every request.
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    trusted_proxies: list[Network] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.allowed_origins = self.settings.origin_allowlist()
        self.trusted_proxies = self.settings.trusted_networks()


@dataclass
class RequestContext:
    request: Request
    runtime: GatewayRuntime
    match: Match
    request_id: str
    ip: str
    session: Session | None
    body: bytes = b""

    def identity(self) -> Identity:
        session = self.session
        return Identity(
            user_id=session.user_id if session else None,
            username=session.username if session else None,
            role=session.role if session else None,
            request_id=self.request_id,
            ip=self.ip,
            issued_at=time.time(),
        )

    def event(
        self,
        event_type: str,
        data: Payload | None = None,
        *,
        status: str = "success",
        entity_type: str | None = None,
        entity_id: int | None = None,
    ) -> Event:
        """An event of this request; the entity defaults to the one the route addresses."""
        route_id = self.match.params.get("id")
        return new_event(
            event_type,
            identity=self.identity(),
            entity_type=entity_type or entity_type_for(self.match.route),
            entity_id=entity_id if entity_id is not None else int(route_id) if route_id else None,
            status=status,
            data=data,
        )
