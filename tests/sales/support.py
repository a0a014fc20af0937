"""Factories and database probes for the sales tests (plain functions)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from stockmanager.db import Database
from tests.support.stack import ApiClient, Stack, unique

PASSWORD = "sales-test-password"


@dataclass
class Account:
    id: int
    username: str
    email: str
    role: str
    client: ApiClient


def create_account(stack: Stack, role: str = "vendedor") -> Account:
    """A new active user created by root through the users API, logged in."""
    username = unique(role[:4])
    email = f"{username}@example.test"
    with stack.root() as root:
        response = root.post(
            "/api/users",
            json={"username": username, "email": email, "password": PASSWORD, "role": role},
        )
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    return Account(user_id, username, email, role, stack.login(username, PASSWORD))


async def create_products(db: Database, *specs: dict[str, Any]) -> list[int]:
    """Products inserted straight into the products schema (exact stock and status setup)."""
    ids = []
    async with db.transaction() as conn:
        for spec in specs:
            row = {
                "barcode": spec.get("barcode", unique("")[:20]),
                "name": spec.get("name", unique("p")),
                "quantity": spec.get("quantity", 10),
                "min_quantity": spec.get("min_quantity", 0),
                "price": Decimal(str(spec.get("price", "1.00"))),
                "status": spec.get("status", 1),
            }
            ids.append(
                await conn.scalar(
                    text(
                        "INSERT INTO products.items"
                        " (barcode, name, quantity, min_quantity, price, status)"
                        " VALUES (:barcode, :name, :quantity, :min_quantity, :price, :status)"
                        " RETURNING id"
                    ),
                    row,
                )
            )
    return ids


async def set_price(db: Database, item_id: int, price: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            text("UPDATE products.items SET price = :p WHERE id = :id"),
            {"p": Decimal(price), "id": item_id},
        )


async def stock(db: Database, *item_ids: int) -> list[int]:
    async with db.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    text("SELECT id, quantity FROM products.items WHERE id = ANY(:ids)"),
                    {"ids": list(item_ids)},
                )
            ).all()
        )
    return [rows[item_id] for item_id in item_ids]


async def ledger(db: Database, *item_ids: int) -> list[Any]:
    async with db.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT item_id, delta, quantity_after, reason, reference, actor_id"
                        " FROM products.stock_movements WHERE item_id = ANY(:ids) ORDER BY id"
                    ),
                    {"ids": list(item_ids)},
                )
            ).all()
        )


async def sales_of(db: Database, vendor_id: int) -> list[int]:
    async with db.connect() as conn:
        return list(
            (
                await conn.scalars(
                    text("SELECT id FROM sales.sales WHERE vendor_id = :v ORDER BY id"),
                    {"v": vendor_id},
                )
            ).all()
        )


async def lines_of(db: Database, sale_id: int) -> list[Any]:
    async with db.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT item_id, item_name, quantity, unit_price FROM sales.sale_lines"
                        " WHERE sale_id = :s ORDER BY id"
                    ),
                    {"s": sale_id},
                )
            ).all()
        )


async def outbox_events(
    db: Database, sale_ids: list[int] | None = None, item_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Envelopes this service wrote for the given sales and/or products, in commit order."""
    async with db.connect() as conn:
        rows = (
            await conn.scalars(
                text(
                    "SELECT payload FROM sales.outbox"
                    " WHERE (payload->'entity'->>'type' = 'sale'"
                    "        AND (payload->'entity'->>'id')::bigint = ANY(:sales))"
                    "    OR (payload->'entity'->>'type' = 'product'"
                    "        AND (payload->'entity'->>'id')::bigint = ANY(:items))"
                    " ORDER BY seq"
                ),
                {"sales": sale_ids or [], "items": item_ids or []},
            )
        ).all()
    return list(rows)


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["code"], str)
    if message is not None:
        assert body["error"] == message
    return body
