"""Password hashing: Argon2id for everything we store; upstream Werkzeug hashes still verify.

Hashes imported from upstream (`pbkdf2:sha256:<iterations>$<salt>$<hex>` and
`scrypt:<n>:<r>:<p>$<salt>$<hex>`) are accepted once and re-hashed with Argon2id on the next
successful login (`needs_rehash`).

Hashing is CPU-bound and memory-hungry (Argon2id takes `memory_cost`, 64 MiB by default, per
computation), so the service runs it through `HashingSlots`: in a worker thread, and at most
`argon2_max_concurrency` at once per process. Requests beyond that wait in the event loop,
holding neither a thread nor memory, so a burst of registrations or logins cannot push the
process past its memory limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter, Gauge

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
# Verified against when a user does not exist, so unknown users cost the same time.
_DUMMY_HASH = _hasher.hash("stockmanager-timing-equaliser")

# Memory a process may spend on concurrent Argon2 work by default: 4 × 64 MiB.
DEFAULT_MEMORY_BUDGET_KIB = 256 * 1024

PASSWORD_HASHING = Counter(
    "stockmanager_password_hashing_total",
    "Password hash computations (operation: hash or verify)",
    ["operation"],
)
HASHING_RUNNING = Gauge(
    "stockmanager_password_hashing_running", "Password hash computations running now"
)
HASHING_WAITING = Gauge(
    "stockmanager_password_hashing_waiting", "Password hash computations waiting for a slot"
)

P = ParamSpec("P")
T = TypeVar("T")


def default_max_concurrency() -> int:
    """Concurrent Argon2 computations that fit the default memory budget (4 at 64 MiB each)."""
    return max(1, DEFAULT_MEMORY_BUDGET_KIB // _hasher.memory_cost)


class HashingSlots:
    """At most `limit` password computations at once, each in a worker thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        self.running = 0
        self.waiting = 0
        self.peak = 0  # most computations ever running at once

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.waiting += 1
        HASHING_WAITING.inc()
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
            HASHING_WAITING.dec()
        self.running += 1
        self.peak = max(self.peak, self.running)
        HASHING_RUNNING.inc()
        computation = asyncio.ensure_future(asyncio.to_thread(work, *args, **kwargs))
        computation.add_done_callback(self._finished)
        # A cancelled request (client gone) cannot stop the thread: its slot is given back
        # only when the computation has really ended, so the bound holds.
        return await asyncio.shield(computation)

    def _finished(self, _: object) -> None:
        self.running -= 1
        HASHING_RUNNING.dec()
        self._semaphore.release()

    async def hash(self, password: str) -> str:
        return await self.run(hash_password, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        return await self.run(verify_password, stored_hash, password)

    async def burn_time(self, password: str) -> None:
        await self.run(burn_time, password)


def hash_password(password: str) -> str:
    PASSWORD_HASHING.labels("hash").inc()
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    PASSWORD_HASHING.labels("verify").inc()
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
