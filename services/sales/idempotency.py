"""`Idempotency-Key` for the sale POSTs (decisions §4).

The key record lives in `sales.idempotency_keys` (per user) and is inserted **in the sale's own
transaction**, before anything else:

- first use: the insert succeeds, the sale is recorded, the response is stored in the same row
  (in the commit's round trip), and everything commits together. A failed sale rolls the key
  back too, so a retry of a refused request runs again (it recorded nothing to replay);
- a concurrent request with the same key blocks on the primary key until the first transaction
  ends: after a commit it finds the stored response and replays it, after a rollback its insert
  goes through and it proceeds as the first use;
- a stored key with a different request (method, path, canonical JSON body) is 422;
- records older than the TTL (24 h) are taken over by the next use of the key and deleted by a
  periodic purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from services.sales import repository_keys as repository
from services.sales.errors import IdempotencyKeyReused
from services.sales.repository_checkout import CheckoutConnection
from services.sales.settings import SalesSettings
from stockmanager.db import Database
from stockmanager.errors import InternalError, ValidationFailed
from stockmanager.identity import Identity

log = logging.getLogger("sales.idempotency")

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Claim:
    user_id: int
    key: str
    request_hash: bytes


def claim_for(
    request: Request, caller: Identity, body: dict[str, Any], raw: str | None
) -> Claim | None:
    """The claim of the request's `Idempotency-Key` header value `raw` (None without the
    header); 400 for an unusable key."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise ValidationFailed("Idempotency-Key inválida (1 a 255 caracteres ASCII visibles)")
    assert caller.user_id is not None
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + canonical
    ).digest()
    return Claim(caller.user_id, key, digest)


async def claim_or_replay(
    conn: CheckoutConnection, claim: Claim, ttl_seconds: int
) -> repository.StoredResponse | None:
    """Own the key (None) or get the response stored for it; 422 if it was another request.

    The first statement of the sale's transaction, so a concurrent holder of the key is
    waited for before anything else is locked.
    """
    for _ in range(3):
        if await repository.claim_idempotency_key(
            conn, claim.user_id, claim.key, claim.request_hash, ttl_seconds
        ):
            return None
        stored = await repository.stored_response(conn, claim.user_id, claim.key)
        if stored is None:
            continue  # expired and purged between the two statements: claim again
        if stored.request_hash != claim.request_hash:
            raise IdempotencyKeyReused()
        return stored
    raise InternalError()


async def remember(
    conn: CheckoutConnection, claim: Claim, status: int, body: bytes, sale_id: int | None
) -> None:
    """Store the response under the claimed key, in the sale's transaction."""
    await repository.store_response(
        conn, claim.user_id, claim.key, status=status, body=body, sale_id=sale_id
    )


class KeyPurger:
    """Deletes expired key records every `interval` seconds (any number of replicas may run)."""

    BATCH = 5000

    def __init__(self, db: Database, settings: SalesSettings) -> None:
        self.db = db
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="idempotency-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def purge_once(self) -> int:
        ttl = self.settings.idempotency_ttl_seconds
        removed = 0
        while True:
            async with self.db.transaction() as conn:
                count = await repository.purge_idempotency_keys(conn, ttl, self.BATCH)
            removed += count
            if count < self.BATCH:
                return removed

    async def _run(self) -> None:
        interval = self.settings.idempotency_purge_interval
        while True:
            try:
                await self.purge_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database away: try again next round
                log.warning("idempotency key purge failed", extra={"error": repr(exc)})
            await asyncio.sleep(interval)
