"""The signed identity the gateway attaches to every request it forwards to a service.

Format of the `X-StockManager-Identity` header: `<base64url(json)>.<hex HMAC-SHA256>`.
The JSON carries the acting user (or none, for public endpoints), the request id, the client IP
and the issue time. Services reject a missing, stale or forged header with 401, so nothing but
the gateway can speak for a user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

IDENTITY_HEADER = "X-StockManager-Identity"
# Client-supplied headers that could be mistaken for identity are always stripped at the gateway.
IDENTITY_HEADER_PREFIXES = ("x-stockmanager-", "x-user-", "x-forwarded-user", "x-remote-user")

ROLE_ROOT = "root"
ROLE_ADMIN = "admin"
ROLE_SELLER = "vendedor"
ROLES = (ROLE_ROOT, ROLE_ADMIN, ROLE_SELLER)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling. `user_id` is None for anonymous (public endpoint) requests."""

    user_id: int | None
    username: str | None
    role: str | None
    request_id: str
    ip: str
    issued_at: float

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin_or_root(self) -> bool:
        return self.role in (ROLE_ADMIN, ROLE_ROOT)

    @property
    def is_root(self) -> bool:
        return self.role == ROLE_ROOT

    def actor(self) -> dict[str, object]:
        """The actor as recorded in event envelopes."""
        return {"id": self.user_id, "username": self.username, "role": self.role}


class IdentityError(Exception):
    """The header is missing, malformed, forged or stale."""


def _sign(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def sign_identity(identity: Identity, secret: str) -> str:
    # orjson serialises the dataclass itself (same keys, same order as asdict(), which deep-copies
    # every field first: a third of the signing cost on every proxied request).
    payload = base64.urlsafe_b64encode(orjson.dumps(identity)).rstrip(b"=")
    return f"{payload.decode()}.{_sign(payload, secret)}"


def verify_identity(header: str | None, secret: str, *, max_age: float = 60.0) -> Identity:
    if not header:
        raise IdentityError("missing identity")
    try:
        payload_text, signature = header.rsplit(".", 1)
    except ValueError as exc:
        raise IdentityError("malformed identity") from exc
    payload = payload_text.encode()
    if not hmac.compare_digest(_sign(payload, secret), signature):
        raise IdentityError("bad signature")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        identity = Identity(**data)
    except (ValueError, TypeError) as exc:
        raise IdentityError("malformed identity") from exc
    age = time.time() - identity.issued_at
    # A little tolerance for clock skew between machines in the future direction.
    if age > max_age or age < -5.0:
        raise IdentityError("stale identity")
    return identity
