"""The `sales` schema (mirrors migrations/versions; the DDL there is authoritative).

Other schemas this service uses: the `products.catalog` view (read in repository*.py), and two
kernel contracts, the products stock function (stockmanager.contracts.stock) and the
`users.directory` view (stockmanager.contracts.users_directory).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)

from stockmanager.events.outbox import outbox_table, processed_events_table

SCHEMA = "sales"
metadata = MetaData(schema=SCHEMA)

sales = Table(
    "sales",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("vendor_id", BigInteger, nullable=False),
    Column("vendor_username", Text, nullable=False),
    Column("payment_method", String(30), nullable=False),
)

sale_lines = Table(
    "sale_lines",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("sale_id", BigInteger, ForeignKey("sales.sales.id"), nullable=False),
    Column("item_id", BigInteger, nullable=False),
    Column("item_name", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", LargeBinary, nullable=False),
    Column("response_status", SmallInteger, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("sale_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
