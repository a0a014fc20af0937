"""Forwarding to services over aiohttp (keep-alive pools, C HTTP parser).

Each service has one or more configured URLs. A URL whose host is a name (`http://sales:5102`)
is re-resolved every `dns_refresh` seconds and stands for every address the name resolves to
(Docker DNS gives one per `docker compose --scale` replica, a headless Service one per pod), so
a replica added later gets requests within one refresh, and one that went away stops getting
them; each address keeps its own keep-alive connections. Replicas are chosen round-robin. A
replica that refuses the connection is skipped for a few seconds (passive health) and the
request is retried on the next one: a refused connection means the service never saw the
request, so the retry is safe for every method. A timeout is never retried (the service may
have acted): it becomes 504.

Only the gateway's public paths leave it: a request path is forwarded in its canonical form (no
trailing slash, so a service never answers with a redirect to itself), and a `Location` or
`Content-Location` a service sends back loses its scheme and host (a service's own address is
internal). A service's `Date` and `Server` headers are dropped: the gateway's server writes one
`Date` of its own and no `Server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from stockmanager.errors import GatewayTimeout, ServiceUnavailable

log = logging.getLogger("gateway.proxy")

# (host, port) -> the addresses it resolves to now.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus the ones we
# recompute.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
# Not forwarded from a service's response: the gateway's own server sets `Date` (one, not two)
# and announces no `Server`.
RESPONSE_DROPPED = HOP_BY_HOP | {"date", "server"}
# Response headers holding a URL, which must never name a service's internal address.
URL_HEADERS = frozenset({"location", "content-location"})


def canonical_path(path_qs: str) -> str:
    """The path without trailing slashes (the route map's form), query string unchanged."""
    path, mark, query = path_qs.partition("?")
    stripped = path.rstrip("/") or "/"
    return stripped + mark + query


def public_url(value: str) -> str:
    """A URL header of a service's answer made relative: the path (and query, fragment) only.
    The gateway serves every public path itself, so no service has a public absolute URL."""
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        return value if not value.startswith("//") else "/"
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def response_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers of a service's answer that the gateway passes on."""
    result: list[tuple[str, str]] = []
    for key, value in headers.items():
        lower = key.lower()
        if lower in RESPONSE_DROPPED:
            continue
        result.append((key, public_url(value) if lower in URL_HEADERS else value))
    return result


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (the operating system's resolver, no caching). IPv4 ones
    only when there are any: a dual-stack name (`localhost`) is one replica, not two, and a
    service bound to an IPv4 address only is not tried on IPv6."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    ipv4 = [address for address in addresses if ":" not in address]
    return ipv4 or addresses


def resolvable_host(url: str) -> tuple[str, int] | None:
    """(host, port) of a plain-HTTP URL whose host is a name to resolve; None for an address
    literal or HTTPS (whose certificate names the host, so it must stay in the URL)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return parts.hostname, parts.port or 80
    return None


def address_url(url: str, address: str) -> str:
    """`url` with its host replaced by `address` (port, path kept)."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class Replica:
    url: str
    down_until: float = 0.0
    # The configured URL's `host:port` when `url` is one of the addresses its name resolved to
    # (sent as the Host header, as if the name had been used).
    host_header: str | None = None


@dataclass
class Upstream:
    name: str
    replicas: list[Replica]
    # The URLs as configured (names not yet resolved); `replicas` is what they resolve to.
    configured: list[str] = field(default_factory=list)
    _next: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not self.configured:
            self.configured = [replica.url for replica in self.replicas]

    def order(self) -> list[Replica]:
        """Replicas to try: healthy ones round-robin first, then the ones marked down."""
        replicas = self.replicas
        if len(replicas) <= 1:
            return replicas  # nothing to rotate; a replica marked down is still tried
        start = self._next % len(replicas)
        self._next = start + 1
        rotated = replicas[start:] + replicas[:start]
        now = time.monotonic()
        healthy = [r for r in rotated if r.down_until <= now]
        return healthy + [r for r in rotated if r.down_until > now]


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | None  # None when streaming
    stream: AsyncIterator[bytes] | None = None
    replica: str = ""


class ServiceProxy:
    def __init__(
        self,
        urls_by_service: dict[str, list[str]],
        *,
        timeout: float,
        connect_timeout: float,
        down_seconds: float,
        pool_limit: int,
        stream_pool_limit: int = 1000,
        dns_refresh: float = 5.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.upstreams = {
            name: Upstream(name, [Replica(url) for url in urls])
            for name, urls in urls_by_service.items()
        }
        # Seconds between re-resolutions of the services' host names (0: never; aiohttp then
        # resolves each name itself, caching it for 10 s).
        self.dns_refresh = dns_refresh
        self.resolver = resolver
        self._refresher: asyncio.Task[None] | None = None
        self._refreshed = asyncio.Event()
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout
        )
        self.down_seconds = down_seconds
        self.pool_limit = pool_limit
        self.stream_pool_limit = stream_pool_limit
        self.session: aiohttp.ClientSession | None = None
        # Long-lived streams (SSE) get their own pool: each open stream holds a connection for
        # as long as the client listens, and must never starve (or be refused by) the pool that
        # ordinary requests share. It is bounded too (the gateway admits at most this many
        # streams per process, gateway/streams.py, so a stream never waits for a connection).
        self.stream_session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # A name that could not be resolved by us stays in its URL and aiohttp resolves it: its
        # cache must not outlive our own refresh (Docker DNS answers change on every scale).
        ttl_dns_cache = max(1, round(self.dns_refresh)) if self.dns_refresh else 10
        connector = aiohttp.TCPConnector(
            limit=self.pool_limit,
            limit_per_host=self.pool_limit,
            keepalive_timeout=30,
            ttl_dns_cache=ttl_dns_cache,
        )
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        self.stream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.stream_pool_limit,
                limit_per_host=self.stream_pool_limit,
                ttl_dns_cache=ttl_dns_cache,
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        if self.dns_refresh > 0:
            await self.refresh()
            self._refresher = asyncio.create_task(self._refresh_forever(), name="dns-refresh")

    async def refresh(self) -> None:
        """Re-resolve every configured host name and replace each service's replica list.

        A replica still present keeps its state (passive health); a name that fails to resolve
        keeps the addresses it had (a DNS hiccup never empties a service), or, if it never
        resolved, stays a name in the URL."""
        for upstream in self.upstreams.values():
            known = {replica.url: replica for replica in upstream.replicas}
            replicas: list[Replica] = []
            for url in upstream.configured:
                for replica in await self._resolve(url, known):
                    if all(replica.url != kept.url for kept in replicas):
                        replicas.append(replica)
            upstream.replicas = replicas
        done, self._refreshed = self._refreshed, asyncio.Event()
        done.set()

    async def _resolve(self, url: str, known: dict[str, Replica]) -> list[Replica]:
        target = resolvable_host(url)
        if target is None:
            return [known.get(url) or Replica(url)]
        host, port = target
        previous = [
            replica
            for replica in known.values()
            if replica.host_header == urlsplit(url).netloc or replica.url == url
        ]
        try:
            addresses = await asyncio.wait_for(
                self.resolver(host, port), timeout=max(self.timeout.connect or 2.0, 0.5)
            )
        except (OSError, TimeoutError) as exc:
            log.warning("cannot resolve %s (%s): keeping its previous addresses", host, exc)
            return previous or [Replica(url)]
        if not addresses:
            return previous or [Replica(url)]
        netloc = urlsplit(url).netloc
        resolved = []
        for address in addresses:
            replica_url = address_url(url, address)
            resolved.append(known.get(replica_url) or Replica(replica_url, host_header=netloc))
        return resolved

    async def wait_refreshed(self) -> None:
        """Return after the next completed re-resolution (tests, health)."""
        await self._refreshed.wait()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.dns_refresh)
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop later refreshes
                log.exception("re-resolving the service host names failed")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.session is not None:
            await self.session.close()
        if self.stream_session is not None:
            await self.stream_session.close()

    async def forward(
        self,
        service: str,
        method: str,
        path_qs: str,
        headers: dict[str, str],
        body: bytes,
        *,
        stream: bool = False,
    ) -> UpstreamResponse:
        assert self.session is not None and self.stream_session is not None
        session = self.stream_session if stream else self.session
        upstream = self.upstreams[service]
        path_qs = canonical_path(path_qs)
        for replica in upstream.order():
            sent = (
                headers if replica.host_header is None else {**headers, "Host": replica.host_header}
            )
            try:
                response = await session.request(
                    method,
                    replica.url + path_qs,
                    headers=sent,
                    data=body if body else None,
                    timeout=self.stream_timeout if stream else self.timeout,
                    allow_redirects=False,
                )
            except (
                aiohttp.ClientConnectorError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError,  # e.g. a reset: the service process was killed
            ) as exc:
                if not isinstance(exc, aiohttp.ClientConnectorError) and method not in (
                    "GET",
                    "HEAD",
                ):
                    # The service may have received a write before the connection dropped.
                    raise ServiceUnavailable() from exc
                replica.down_until = time.monotonic() + self.down_seconds
                continue
            except TimeoutError as exc:
                raise GatewayTimeout() from exc
            replica.down_until = 0.0
            passed_on = response_headers(response.headers)
            if stream:
                return UpstreamResponse(
                    response.status, passed_on, None, _iterate(response), replica.url
                )
            try:
                payload = await response.read()
            except TimeoutError as exc:
                raise GatewayTimeout() from exc
            except aiohttp.ClientError as exc:
                raise ServiceUnavailable() from exc
            finally:
                response.release()
            return UpstreamResponse(response.status, passed_on, payload, None, replica.url)
        raise ServiceUnavailable()

    async def probe(self, service: str, path: str = "/readyz") -> dict[str, object]:
        """Ask every replica of a service for its readiness (deep health)."""
        assert self.session is not None
        results: dict[str, object] = {}

        async def one(replica: Replica) -> None:
            try:
                async with self.session.get(  # type: ignore[union-attr]
                    replica.url + path, timeout=aiohttp.ClientTimeout(total=2.0)
                ) as response:
                    results[replica.url] = (
                        "ok" if response.status == 200 else f"http {response.status}"
                    )
            except Exception as exc:  # noqa: BLE001 - reported in health output
                results[replica.url] = f"down: {type(exc).__name__}"

        await asyncio.gather(*(one(r) for r in self.upstreams[service].replicas))
        return results


async def _iterate(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError):
        return
    finally:
        response.release()
        response.close()
