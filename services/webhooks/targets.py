"""Where a webhook may point: URL rules and the SSRF guard.

A target must be `http(s)://host[:port]/...` whose host resolves only to public addresses:
loopback, private, link-local (cloud metadata lives there), multicast, reserved, unspecified
and shared (CGNAT) addresses are refused, IPv4-mapped IPv6 included. The check runs when a
subscription is created or changed and again at every delivery: the delivery client resolves
through `GuardedResolver`, so the connection goes to exactly the addresses that were checked (a
DNS answer that changes between the check and the connect, "DNS rebinding", cannot slip in).
`allow_private` (STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS) turns the address check off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

URL_MAX = 2000
# Addresses some clouds answer metadata requests on that the ipaddress flags might not cover.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL may not be a webhook target; the message says why (shown to the admin)."""


def parse_target(url: str) -> SplitResult:
    """The URL split, if its form is acceptable (no resolution here)."""
    if len(url) > URL_MAX:
        raise TargetRefused(f"La URL no puede superar {URL_MAX} caracteres")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise TargetRefused("La URL no puede contener espacios ni caracteres de control")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("URL inválida") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("La URL debe empezar con http:// o https://")
    if not parts.hostname:
        raise TargetRefused("La URL debe nombrar un host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("La URL no puede llevar usuario ni contraseña")
    if port == 0:
        raise TargetRefused("Puerto inválido")
    if parts.fragment:
        raise TargetRefused("La URL no puede llevar un fragmento (#)")
    return parts


def refused_address(address: IPAddress) -> bool:
    """True for every address a webhook must never reach."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refused_address(address.ipv4_mapped)
    return (
        address in METADATA_ADDRESSES
        or not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_literal(host: str, *, allow_private: bool) -> IPAddress | None:
    """The address if `host` is an IP literal (refused with TargetRefused if it may not be
    reached), None for a name. No I/O: a literal's verdict never changes, so callers may cache
    it."""
    literal = literal_address(host)
    if literal is not None and not allow_private and refused_address(literal):
        raise TargetRefused(f"La URL apunta a una dirección no permitida ({literal})")
    return literal


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[ResolveResult]:
    """Every address of `host`, refused (TargetRefused) if any of them is not public."""
    literal = check_literal(host, allow_private=allow_private)
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [_result(host, str(literal), port, family)]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"No se pudo resolver el host '{host}'") from exc
    results: list[ResolveResult] = []
    for family, _type, _proto, _canonical, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        # One refused address refuses the host: the connection could land on any of them.
        if not allow_private and refused_address(address):
            raise TargetRefused(f"'{host}' resuelve a una dirección no permitida ({address})")
        results.append(_result(host, str(address), port, family))
    if not results:
        raise TargetRefused(f"No se pudo resolver el host '{host}'")
    return results


async def check_target(url: str, *, allow_private: bool) -> str:
    """The URL (unchanged) if it may be a target now; TargetRefused otherwise."""
    parts = parse_target(url)
    assert parts.hostname is not None  # parse_target guarantees it
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await resolve_checked(parts.hostname, port, allow_private=allow_private)
    return url


def _result(host: str, address: str, port: int, family: int) -> ResolveResult:
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0, flags=socket.AI_NUMERICHOST
    )


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: the checked addresses are the ones connected to."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            return await resolve_checked(host, port, allow_private=self.allow_private)
        except TargetRefused as exc:
            # aiohttp turns an OSError from the resolver into ClientConnectorDNSError.
            raise OSError(str(exc)) from exc

    async def close(self) -> None:
        return None
