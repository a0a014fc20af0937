"""Typed, normalised upstream rows: what the services' writers receive.

Every value here already obeys our schema (lengths, ranges, time zones): the rules in `rules.py`
made it so and reported each change. Ids are upstream's; the writers map them to local ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class UserRecord:
    upstream_id: int
    username: str
    email: str
    password_hash: str  # upstream's Werkzeug hash, kept (re-hashed on the first login)
    role: str
    status: int
    application: str
    created_at: datetime  # UTC


@dataclass(frozen=True, slots=True)
class ProductRecord:
    upstream_id: int
    barcode: str | None
    name: str
    description: str
    quantity: int  # arrives through the ledger (reason `import`), never written directly
    min_quantity: int
    price: Decimal
    expiration_date: date | None
    status: int
    created_at: datetime
    updated_at: datetime
    # True: no upstream row; recreated (disabled) for sale lines that point at it.
    placeholder: bool = False


@dataclass(frozen=True, slots=True)
class SaleRecord:
    upstream_id: int
    sold_at: datetime  # UTC
    vendor_upstream_id: int | None  # None: the seller is not in the file
    vendor_name: str  # used when the seller is not in the file
    payment_method: str


@dataclass(frozen=True, slots=True)
class LineRecord:
    sale_upstream_id: int
    item_upstream_id: int
    item_name: str  # the product's name as the file has it (sales keep the name of the time)
    quantity: int
    unit_price: Decimal | float  # a float is upstream's REAL as it is (rounded by PostgreSQL)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    upstream_id: int
    user_upstream_id: int
    title: str
    message: str | None
    type: str
    action_url: str | None
    is_read: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One upstream audit_log row, imported as history (append-only like every record)."""

    upstream_id: int
    user_upstream_id: int | None
    action: str
    entity_type: str
    entity_id: int | None
    old_value: Any
    new_value: Any
    description: str
    ip_address: str | None
    occurred_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class UpstreamData:
    """Everything read from one file, normalised."""

    users: list[UserRecord]
    products: list[ProductRecord]
    sales: list[SaleRecord]
    lines: list[LineRecord]
    notifications: list[NotificationRecord]
    history: list[HistoryRecord]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who the import is recorded as (the local root account)."""

    user_id: int | None
    username: str | None
    role: str | None
