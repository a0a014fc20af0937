"""Forwarding to services over aiohttp (keep-alive pools, C HTTP parser).

Each service has one or more replica URLs, chosen round-robin. A replica that refuses the
connection is skipped for a few seconds (passive health) and the request is retried on the next
one: a refused connection means the service never saw the request, so the retry is safe for
every method. A timeout is never retried (the service may have acted): it becomes 504.

Only the gateway's public paths leave it: a request path is forwarded in its canonical form (no
trailing slash, so a service never answers with a redirect to itself), and a `Location` or
`Content-Location` a service sends back loses its scheme and host (a service's own address is
internal). A service's `Date` and `Server` headers are dropped: the gateway's server writes one
`Date` of its own and no `Server`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from stockmanager.errors import GatewayTimeout, ServiceUnavailable

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


@dataclass
class Replica:
    url: str
    down_until: float = 0.0


@dataclass
class Upstream:
    name: str
    replicas: list[Replica]
    _cycle: itertools.cycle[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cycle = itertools.cycle(range(len(self.replicas)))

    def order(self) -> list[Replica]:
        """Replicas to try: healthy ones round-robin first, then the ones marked down."""
        start = next(self._cycle)
        rotated = self.replicas[start:] + self.replicas[:start]
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
    ) -> None:
        self.upstreams = {
            name: Upstream(name, [Replica(url) for url in urls])
            for name, urls in urls_by_service.items()
        }
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
        connector = aiohttp.TCPConnector(
            limit=self.pool_limit,
            limit_per_host=self.pool_limit,
            keepalive_timeout=30,
            ttl_dns_cache=300,
        )
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        self.stream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.stream_pool_limit,
                limit_per_host=self.stream_pool_limit,
                ttl_dns_cache=300,
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
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
            try:
                response = await session.request(
                    method,
                    replica.url + path_qs,
                    headers=headers,
                    data=body if body else None,
                    timeout=self.stream_timeout if stream else self.timeout,
                    allow_redirects=False,
                )
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                if isinstance(exc, aiohttp.ServerDisconnectedError) and method not in (
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
