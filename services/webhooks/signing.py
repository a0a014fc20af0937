"""Signing secrets: generated here, shown once, stored encrypted, used to sign every request.

Receivers verify with any Standard Webhooks library, so the secrets have that format
(`whsec_` + base64 of 24 random bytes) and the signatures are `standardwebhooks.Webhook.sign`'s.
The server must sign with the secret, so it cannot keep a hash: it keeps a Fernet token, under
a key from STOCKMANAGER_WEBHOOKS_SECRET_KEY or derived from the internal secret.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks import Webhook

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


def signature_header(
    secrets_in_use: Iterable[str], message_id: str, timestamp: datetime, body: bytes
) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated (Standard Webhooks
    lets a receiver accept any of them, which is how a rotation's grace period works)."""
    return " ".join(_signer(secret).sign(message_id, timestamp, body) for secret in secrets_in_use)


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    # One per secret (it decodes the secret once), not one per request.
    return Webhook(secret)
