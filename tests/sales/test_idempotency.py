"""Idempotency-Key on the sale POSTs: replay, 422 on reuse, per-user scope, races, expiry."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
from sqlalchemy import text

from services.sales.idempotency import KeyPurger
from stockmanager.db import Database
from tests.sales.support import (
    Account,
    assert_error,
    create_account,
    create_products,
    ledger,
    outbox_events,
    sales_of,
    stock,
)
from tests.support.stack import Stack, unique


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_replay_returns_the_first_response_and_records_nothing(
    stack: Stack, db: Database
) -> None:
    seller = create_account(stack)
    a, b = await create_products(db, {"quantity": 10}, {"quantity": 10})
    key = str(uuid.uuid4())
    body = {
        "items": [{"item_id": a, "quantity": 2}, {"item_id": b, "quantity": 1}],
        "payment_method": "Tarjeta",
    }
    first = seller.client.post("/api/sales/bulk", json=body, headers=keyed(key))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # Same JSON with keys in another order is the same request.
    reordered = {"payment_method": "Tarjeta", "items": body["items"]}
    for payload in (body, reordered):
        again = seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
    sale_id = first.json()["sale_id"]
    assert await sales_of(db, seller.id) == [sale_id]
    assert await stock(db, a, b) == [8, 9]
    assert len(await ledger(db, a, b)) == 2
    assert [e["type"] for e in await outbox_events(db, [sale_id])] == ["sale.created"]


async def test_same_key_with_another_body_is_422(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    key = unique("key")
    assert (
        seller.client.post(
            "/api/sales/bulk", json={"items": [{"item_id": a, "quantity": 1}]}, headers=keyed(key)
        ).status_code
        == 201
    )
    for path, payload in (
        ("/api/sales/bulk", {"items": [{"item_id": a, "quantity": 2}]}),
        ("/api/sales/bulk", {"items": [{"item_id": a, "quantity": 1}], "payment_method": "X"}),
        ("/api/sales", {"barcode": "123", "quantity": 1}),  # another endpoint, same key
    ):
        body = assert_error(
            seller.client.post(path, json=payload, headers=keyed(key)),
            422,
            "La Idempotency-Key ya se usó con una petición diferente",
        )
        assert body["code"] == "idempotency_key_reused"
    assert await stock(db, a) == [9]
    assert len(await sales_of(db, seller.id)) == 1


async def test_keys_are_scoped_per_user(stack: Stack, db: Database) -> None:
    first, second = create_account(stack), create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    key, payload = unique("shared"), {"items": [{"item_id": a, "quantity": 1}]}
    one = first.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    two = second.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    assert one.status_code == two.status_code == 201
    assert "idempotent-replayed" not in two.headers
    assert one.json()["sale_id"] != two.json()["sale_id"]
    assert await stock(db, a) == [8]


async def test_barcode_sale_replay(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    barcode = unique("")[:12]
    (a,) = await create_products(db, {"barcode": barcode, "quantity": 5})
    key, payload = unique("bc"), {"barcode": barcode, "quantity": 2}
    first = seller.client.post("/api/sales", json=payload, headers=keyed(key))
    again = seller.client.post("/api/sales", json=payload, headers=keyed(key))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert await stock(db, a) == [3]


async def test_a_refused_sale_keeps_no_key(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 1})
    key, payload = unique("retry"), {"items": [{"item_id": a, "quantity": 2}]}
    assert_error(
        seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key)),
        400,
        "Stock insuficiente",
    )
    async with db.transaction() as conn:
        await conn.execute(text("UPDATE products.items SET quantity = 5 WHERE id = :id"), {"id": a})
    # Nothing was recorded under the key, so the retry runs for real.
    retry = seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert await stock(db, a) == [3]


async def test_invalid_keys_are_400(stack: Stack, db: Database, seller: Account) -> None:
    (a,) = await create_products(db, {"quantity": 5})
    payload = {"items": [{"item_id": a, "quantity": 1}]}
    for key in ("x" * 256, "", "a\tb", "clé"):
        headers = {"Idempotency-Key": key.encode()}
        response = seller.client.post("/api/sales/bulk", json=payload, headers=headers)
        assert_error(response, 400)
    assert await stock(db, a) == [5]


async def test_expired_keys_are_forgotten(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    (a,) = await create_products(db, {"quantity": 10})
    key, payload = unique("old"), {"items": [{"item_id": a, "quantity": 1}]}
    first = seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "UPDATE sales.idempotency_keys SET created_at = now() - interval '25 hours'"
                " WHERE user_id = :u AND key = :k"
            ),
            {"u": seller.id, "k": key},
        )
    second = seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    assert second.status_code == 201 and "idempotent-replayed" not in second.headers
    assert second.json()["sale_id"] != first.json()["sale_id"]
    third = seller.client.post("/api/sales/bulk", json=payload, headers=keyed(key))
    assert third.headers["idempotent-replayed"] == "true" and third.content == second.content
    assert await stock(db, a) == [8]


async def test_purge_deletes_only_expired_keys(db: Database) -> None:
    user = 9_000_000_000_000 + uuid.uuid4().int % 1_000_000
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO sales.idempotency_keys"
                " (user_id, key, request_hash, response_status, response_body, created_at)"
                " VALUES (:u, 'old', '\\x00', 201, '\\x7b7d', now() - interval '25 hours'),"
                "        (:u, 'new', '\\x00', 201, '\\x7b7d', now() - interval '23 hours')"
            ),
            {"u": user},
        )
    settings: Any = SimpleNamespace(idempotency_ttl_seconds=86400)
    assert await KeyPurger(db, settings).purge_once() >= 1
    async with db.connect() as conn:
        left = (
            await conn.scalars(
                text("SELECT key FROM sales.idempotency_keys WHERE user_id = :u"), {"u": user}
            )
        ).all()
    assert left == ["new"]


async def test_concurrent_requests_with_one_key_create_one_sale(stack: Stack, db: Database) -> None:
    seller = create_account(stack)
    a, b = await create_products(db, {"quantity": 100}, {"quantity": 100})
    key = unique("race")
    same = {"items": [{"item_id": a, "quantity": 3}, {"item_id": b, "quantity": 1}]}
    other = {"items": [{"item_id": a, "quantity": 5}]}
    async with httpx.AsyncClient(
        base_url=stack.base_url, cookies=seller.client.cookies, timeout=60
    ) as client:
        responses = await asyncio.gather(
            *(client.post("/api/sales/bulk", json=same, headers=keyed(key)) for _ in range(12))
        )
        # After the key is taken, a different body under it is refused, even concurrently.
        late = await asyncio.gather(
            *(
                client.post("/api/sales/bulk", json=body, headers=keyed(key))
                for body in (same, other, same, other)
            )
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 11
    assert [r.status_code for r in late] == [201, 422, 201, 422]
    assert len(await sales_of(db, seller.id)) == 1
    assert await stock(db, a, b) == [97, 99]
    assert len(await ledger(db, a, b)) == 2
