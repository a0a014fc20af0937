"""Settings of the gateway process."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field

from stockmanager.registry import GATEWAY_INTERNAL_PORT, SERVICES
from stockmanager.settings import KernelSettings


def _default_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


class GatewaySettings(KernelSettings):
    # Comma-separated base URLs per service; several URLs = several replicas.
    products_urls: str = _default_url(5101)
    sales_urls: str = _default_url(5102)
    users_urls: str = _default_url(5103)
    metrics_urls: str = _default_url(5104)
    notifications_urls: str = _default_url(5105)
    audit_urls: str = _default_url(5106)
    webhooks_urls: str = _default_url(5107)

    cookie_name: str = "session"
    cookie_secure: bool = False
    session_idle_timeout: int = 30 * 60
    session_absolute_timeout: int = 12 * 60 * 60
    # A session read from Redis is reused by this process for up to this many seconds (0: read
    # Redis on every request). Revocations reach every replica's cache at once through Redis
    # pub/sub; this bound only matters if such a message is lost, so it is at most 1 s, the
    # time within which a revoked session must stop working (gateway/session_cache.py).
    session_cache_seconds: float = Field(1.0, ge=0, le=1.0)
    # Comma-separated origins allowed to make state-changing requests (besides same-origin).
    allowed_origins: str = "http://localhost:5000,http://127.0.0.1:5000"
    # Comma-separated CIDRs whose X-Forwarded-For we believe.
    trusted_proxies: str = ""

    max_body_bytes: int = 1024 * 1024
    import_max_body_bytes: int = 10 * 1024 * 1024
    upstream_timeout: float = 30.0
    upstream_connect_timeout: float = 2.0
    # A replica that refused a connection is skipped for this long (passive health).
    replica_down_seconds: float = 5.0
    # Service host names are re-resolved this often (seconds) and each address gets requests:
    # a `docker compose --scale` replica is used within this time. 0: resolve per connection.
    upstream_dns_refresh_seconds: float = Field(5.0, ge=0)

    login_max_failures: int = 5
    login_ip_max_failures: int = 50
    login_failure_window: int = 15 * 60

    # The gateway's own events (gateway/events.py): one event's JSON at most this many bytes
    # (free text in them is clipped, so only a bug reaches it); the in-memory publish queue at
    # most this many events and bytes. Over a bound an event is dropped and counted.
    event_max_bytes: int = Field(2048, ge=512)
    event_queue_size: int = Field(10_000, ge=1)
    event_queue_max_bytes: int = Field(4 * 1024 * 1024, ge=4096)

    # Per-address limits on the public POSTs (gateway/publiclimits.py): requests per window
    # (seconds) from one client address (IPv6: one /64), shared by every replica through Redis.
    register_limit: int = Field(10, ge=1)
    register_limit_window: int = Field(60 * 60, ge=1)
    reset_request_limit: int = Field(10, ge=1)
    reset_request_limit_window: int = Field(15 * 60, ge=1)
    # validate-code and change-password share one budget: each is a guess at a code.
    reset_code_limit: int = Field(20, ge=1)
    reset_code_limit_window: int = Field(15 * 60, ge=1)

    upstream_pool_limit: int = Field(100, ge=1)

    # /readyz and /metrics are served only on this internal listener (never on the public port;
    # /healthz is on both). 0 = no internal listener (and so no /readyz, /metrics).
    gateway_internal_host: str = "127.0.0.1"
    gateway_internal_port: int = Field(GATEWAY_INTERNAL_PORT, ge=0, le=65535)
    # Unauthenticated `GET /api/health?deep=1` reuses a deep check this recent (seconds).
    health_cache_seconds: float = Field(5.0, ge=0)
    # SSE through the gateway (gateway/streams.py): open streams per user (all replicas) and
    # per gateway process (also the stream connection pool's size); an open stream re-checks
    # its session this often and ends once the session is gone.
    sse_max_streams_per_user: int = Field(10, ge=1)
    sse_max_streams: int = Field(1000, ge=1)
    sse_session_check_seconds: float = Field(5.0, gt=0)
    # Set by `stockmanager up`: the supervisor's status file (gateway/health.py).
    supervisor_status_file: str = ""

    def service_urls(self, service: str) -> list[str]:
        raw: str = getattr(self, f"{service}_urls")
        return [url.strip().rstrip("/") for url in raw.split(",") if url.strip()]

    def origin_allowlist(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip()
        )

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(cidr.strip(), strict=False)
            for cidr in self.trusted_proxies.split(",")
            if cidr.strip()
        ]


assert {s.name for s in SERVICES} == {
    "products",
    "sales",
    "users",
    "metrics",
    "notifications",
    "audit",
    "webhooks",
}, "GatewaySettings must list every service's URLs"


@lru_cache(maxsize=1)
def gateway_settings() -> GatewaySettings:
    return GatewaySettings()
