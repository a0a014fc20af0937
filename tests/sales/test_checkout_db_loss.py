"""A checkout whose database connection dies mid-transaction answers 503, and the same
Idempotency-Key then records the sale exactly once.

The fault bench found 500s here when PostgreSQL was killed under load: a client cannot know
whether to retry a 500. A 503 says "retry", and the key makes the retry safe.
"""

from __future__ import annotations

import threading
import uuid

import httpx
import psycopg

from stockmanager.db import Database
from tests.sales.support import create_account, create_products, sales_of, stock
from tests.support.stack import Stack
from tests.support.waiting import eventually

BLOCKED_CHECKOUT = """
    SELECT pid FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND state = 'active' AND pid <> pg_backend_pid()
      AND query ILIKE '%sales.record_sale%'
"""


async def test_lost_connection_is_503_and_the_keyed_retry_records_once(
    stack: Stack, db: Database, migrated: str
) -> None:
    seller = create_account(stack)
    (item,) = await create_products(db, {"quantity": 10})
    key = str(uuid.uuid4())
    body = {"items": [{"item_id": item, "quantity": 2}]}
    answers: list[httpx.Response] = []

    with psycopg.connect(migrated) as holder, psycopg.connect(migrated, autocommit=True) as admin:
        # Hold the product's row lock, so the checkout waits inside its transaction.
        holder.execute("SELECT 1 FROM products.items WHERE id = %s FOR UPDATE", (item,))

        def checkout() -> None:
            answers.append(
                seller.client.post("/api/sales/bulk", json=body, headers={"Idempotency-Key": key})
            )

        sender = threading.Thread(target=checkout)
        sender.start()
        blocked: list[int] = []

        def found_blocked() -> bool:
            blocked[:] = [row[0] for row in admin.execute(BLOCKED_CHECKOUT).fetchall()]
            return bool(blocked)

        eventually(found_blocked, what="the checkout to wait on the row lock")
        for pid in blocked:  # the database drops the checkout's connection mid-transaction
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        sender.join(30)
        holder.rollback()

    (answer,) = answers
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "service_unavailable"
    assert answer.headers["Retry-After"]
    assert await sales_of(db, seller.id) == []
    assert await stock(db, item) == [10]

    retried = seller.client.post("/api/sales/bulk", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 201, retried.text
    assert len(await sales_of(db, seller.id)) == 1
    assert await stock(db, item) == [8]
