"""Password hashing: Argon2id for everything we store; upstream Werkzeug hashes still verify.

Hashes imported from upstream (`pbkdf2:sha256:<iterations>$<salt>$<hex>` and
`scrypt:<n>:<r>:<p>$<salt>$<hex>`) are accepted once and re-hashed with Argon2id on the next
successful login (`needs_rehash`). Hashing is CPU-bound, so callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
# Verified against when a user does not exist, so unknown users cost the same time.
_DUMMY_HASH = _hasher.hash("stockmanager-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    if stored_hash.startswith("$argon2"):
        try:
            return _hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if stored_hash.startswith(("pbkdf2:", "scrypt:")):
        return _verify_werkzeug(stored_hash, password)
    return False


def needs_rehash(stored_hash: str) -> bool:
    if not stored_hash.startswith("$argon2"):
        return True
    return _hasher.check_needs_rehash(stored_hash)


def burn_time(password: str) -> None:
    """Spend one verification's worth of time (unknown user) and return nothing."""
    verify_password(_DUMMY_HASH, password)


def _verify_werkzeug(stored_hash: str, password: str) -> bool:
    try:
        method, salt, expected = stored_hash.split("$", 2)
    except ValueError:
        return False
    parts = method.split(":")
    try:
        if parts[0] == "pbkdf2":
            digest_name = parts[1] if len(parts) > 1 else "sha256"
            iterations = int(parts[2]) if len(parts) > 2 else 600_000
            actual = hashlib.pbkdf2_hmac(
                digest_name, password.encode(), salt.encode(), iterations
            ).hex()
        elif parts[0] == "scrypt":
            n, r, p = (int(x) for x in parts[1:4]) if len(parts) >= 4 else (2**15, 8, 1)
            actual = hashlib.scrypt(
                password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p
            ).hex()
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
