"""Which client headers reach a service, and the signed identity added to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.proxy import HOP_BY_HOP
from stockmanager.identity import (
    IDENTITY_HEADER,
    IDENTITY_HEADER_PREFIXES,
    Identity,
    sign_identity,
)

if TYPE_CHECKING:
    from gateway.runtime import RequestContext

# Never forwarded: the session cookie stays at the gateway; proxies' claims are replaced.
_DROPPED = HOP_BY_HOP | {
    "cookie",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "x-request-id",
}


def forward_headers(
    request: Request, identity: Identity, secret: str, ctx: RequestContext
) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered in _DROPPED or lowered.startswith(IDENTITY_HEADER_PREFIXES):
            continue
        headers[lowered] = value
    headers[IDENTITY_HEADER] = sign_identity(identity, secret)
    headers["x-request-id"] = ctx.request_id
    headers["x-forwarded-for"] = ctx.ip
    return headers
