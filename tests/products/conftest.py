"""Fixtures for the products tests: logged-in clients per role and product factories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.db import Database
from tests.support.stack import ApiClient, Stack, unique

PASSWORD = "products-test-pw"


def make_user(stack: Stack, migrated: str, role: str) -> str:
    """A user of `role`: through the users API when it exists, else straight into its table."""
    username = unique(role[:4])
    with stack.root() as root:
        response = root.post(
            "/api/users",
            json={
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                "role": role,
            },
        )
    if response.status_code != 201:
        asyncio.run(_insert_user(migrated, username, role))
    return username


async def _insert_user(database_url: str, username: str, role: str) -> None:
    from services.users.passwords import hash_password

    database = Database(database_url, pool_size=1, max_overflow=0)
    try:
        async with database.transaction() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users.users (username, email, password_hash, role, status,"
                    " application) VALUES (:u, :e, :h, :r, 1, 'accepted')"
                ),
                {
                    "u": username,
                    "e": f"{username}@example.com",
                    "h": hash_password(PASSWORD),
                    "r": role,
                },
            )
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def root(stack: Stack) -> Iterator[ApiClient]:
    with stack.root() as client:
        yield client


@pytest.fixture(scope="module")
def admin(stack: Stack, migrated: str) -> Iterator[ApiClient]:
    username = make_user(stack, migrated, "admin")
    with stack.login(username, PASSWORD) as client:
        yield client


@pytest.fixture(scope="module")
def seller(stack: Stack, migrated: str) -> Iterator[ApiClient]:
    username = make_user(stack, migrated, "vendedor")
    with stack.login(username, PASSWORD) as client:
        yield client


@pytest.fixture(scope="module")
def anon(stack: Stack) -> Iterator[ApiClient]:
    with stack.client() as client:
        yield client


@pytest_asyncio.fixture
async def conn(db: Database) -> AsyncIterator[AsyncConnection]:
    """A transaction rolled back after the test."""
    async with db.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


def product_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "barcode": unique("b")[:20],
        "name": unique("P")[:25],
        "description": "una descripción",
        "quantity": 20,
        "min_quantity": 5,
        "price": 99.9,
        "expiration_date": "2031-01-31",
    }
    body.update(overrides)
    return body


def find_by_barcode(client: httpx.Client, barcode: str) -> dict[str, Any]:
    response = client.get("/api/products_all", params={"search": barcode})
    assert response.status_code == 200, response.text
    matches: list[dict[str, Any]] = [p for p in response.json()["data"] if p["barcode"] == barcode]
    assert len(matches) == 1, response.json()
    return matches[0]


def create_product(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """Create through the API; returns the stored product (list shape, with its id)."""
    body = product_body(**overrides)
    response = client.post("/api/products", json=body)
    assert response.status_code == 201, response.text
    return find_by_barcode(client, body["barcode"])


def error_of(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("code"), str)
    if message is not None:
        assert body["error"] == message
    return body
