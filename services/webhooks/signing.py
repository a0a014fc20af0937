"""Signing secrets: generated here, shown once, stored encrypted, used to sign every request.

Receivers verify with any Standard Webhooks library, so the secrets have that format
(`whsec_` + base64 of 24 random bytes) and the signatures are `standardwebhooks.Webhook.sign`'s
(computed here with one HMAC call each: tests/webhooks/test_rules.py verifies them with it).
The server must sign with the secret, so it cannot keep a hash: it keeps a Fernet token, under
a key from STOCKMANAGER_WEBHOOKS_SECRET_KEY or derived from the internal secret.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Iterable

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
_KEY_INFO = b"stockmanager webhooks signing secrets v1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_cipher(dedicated_key: str, internal_secret: str) -> Fernet:
    """The Fernet that encrypts secrets: the dedicated key if set, else one derived (HKDF) from
    the internal secret, so a deployment needs no new setting."""
    if dedicated_key:
        return Fernet(dedicated_key.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
        internal_secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def signing_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret (its base64 part decoded, as the library does)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "==")


def signature_header(keys: Iterable[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` of `body` signed at `timestamp` (seconds since the epoch): one
    `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` per key (signing_key), space-separated
    (Standard Webhooks lets a receiver accept any of them: a rotation's grace period)."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for key in keys
    )
