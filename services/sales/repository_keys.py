"""SQL of the Idempotency-Key records (see idempotency.py for the protocol).

Claims and stored responses run on the sale's own checkout connection (psycopg); the periodic
purge runs on the service's SQLAlchemy engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sales.repository_checkout import CheckoutConnection


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: bytes
    status: int
    body: bytes


# Takes the key, or takes over an expired record of it. When another transaction holds the
# key uncommitted, this waits for it on the primary key, then returns no row if it committed.
_CLAIM_KEY = """
    INSERT INTO sales.idempotency_keys AS k
        (user_id, key, request_hash, response_status, response_body)
    VALUES (%(user_id)s, %(key)s, %(request_hash)s, 0, '')
    ON CONFLICT (user_id, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = 0,
           response_body = EXCLUDED.response_body, sale_id = NULL, created_at = now()
     WHERE k.created_at < now() - make_interval(secs => %(ttl)s)
    RETURNING 1
"""

_STORED_RESPONSE = """
    SELECT request_hash, response_status, response_body
      FROM sales.idempotency_keys
     WHERE user_id = %(user_id)s AND key = %(key)s
"""

_STORE_RESPONSE = """
    UPDATE sales.idempotency_keys
       SET response_status = %(status)s, response_body = %(body)s, sale_id = %(sale_id)s
     WHERE user_id = %(user_id)s AND key = %(key)s
"""

_PURGE_KEYS = text(
    """
    DELETE FROM sales.idempotency_keys
     WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM sales.idempotency_keys
            WHERE created_at < now() - make_interval(secs => :ttl)
            LIMIT :batch))
    """
)


async def claim_idempotency_key(
    conn: CheckoutConnection, user_id: int, key: str, request_hash: bytes, ttl_seconds: int
) -> bool:
    cursor = await conn.execute(
        _CLAIM_KEY,
        {"user_id": user_id, "key": key, "request_hash": request_hash, "ttl": ttl_seconds},
    )
    return await cursor.fetchone() is not None


async def stored_response(
    conn: CheckoutConnection, user_id: int, key: str
) -> StoredResponse | None:
    cursor = await conn.execute(_STORED_RESPONSE, {"user_id": user_id, "key": key})
    row = await cursor.fetchone()
    if row is None:
        return None
    return StoredResponse(bytes(row[0]), int(row[1]), bytes(row[2]))


async def store_response(
    conn: CheckoutConnection,
    user_id: int,
    key: str,
    *,
    status: int,
    body: bytes,
    sale_id: int | None,
) -> None:
    await conn.execute(
        _STORE_RESPONSE,
        {"user_id": user_id, "key": key, "status": status, "body": body, "sale_id": sale_id},
    )


async def purge_idempotency_keys(conn: AsyncConnection, ttl_seconds: int, batch: int) -> int:
    result = await conn.execute(_PURGE_KEYS, {"ttl": ttl_seconds, "batch": batch})
    return int(result.rowcount or 0)
