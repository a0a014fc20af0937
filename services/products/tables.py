"""The `products` schema (mirrors the DDL of `migrations/`; the migrations are the truth)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)

from stockmanager.events.outbox import outbox_table, processed_events_table

SCHEMA = "products"
metadata = MetaData(schema=SCHEMA)

items = Table(
    "items",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("barcode", String(20), unique=True),
    Column("name", String(25), nullable=False),
    Column("description", String(200), nullable=False, server_default=text("''")),
    Column("quantity", Integer, nullable=False, server_default=text("0")),
    Column("min_quantity", Integer, nullable=False, server_default=text("5")),
    Column("price", Numeric(12, 2), nullable=False),
    Column("expiration_date", Date),
    Column("status", SmallInteger, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Unicode case-folded copies for search and the name sort (migration products_0002).
    Column("name_folded", Text, Computed("products.search_fold(name)", persisted=True)),
    Column("barcode_folded", Text, Computed("products.search_fold(barcode)", persisted=True)),
    Column(
        "description_folded", Text, Computed("products.search_fold(description)", persisted=True)
    ),
)

# Joins a product's searchable fields in `search_terms.terms` (migration products_0010). A
# control character, so it is a word boundary for pg_trgm and never part of a typed term in
# practice; a term that does contain it is matched field by field (repository._search).
SEARCH_TERMS_SEPARATOR = "\x1f"

# One row per product: what a search looks at (its folded fields joined by the separator, under
# the catalogue's one trigram index) and what a search sorted by name filters and sorts on.
# Written only by products_0010's triggers on `items`; stock and price changes never touch it.
search_terms = Table(
    "search_terms",
    metadata,
    Column("item_id", BigInteger, primary_key=True),  # items.id; no foreign key (products_0010)
    Column("status", SmallInteger, nullable=False),
    Column("name_folded", Text, nullable=False),
    Column("barcode_folded", Text),
    Column("terms", Text, nullable=False),
)

stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("item_id", BigInteger, ForeignKey(items.c.id), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("quantity_after", Integer, nullable=False),
    Column("reason", String(20), nullable=False),
    Column("reference", String(100)),
    Column("actor_id", BigInteger),
    Column("actor_username", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
