"""The `metrics` schema (mirrors the DDL of `migrations/`; the migrations are the truth).

The service owns no business data. Its tables are a rollup of the sales of closed business days
(refreshed by `rollups.py`) plus the usual event bookkeeping. Products, sales and users are read
through the views their owners publish (`products.catalog`, `sales.sale_lines_v`,
`sales.sales_v`, `users.directory`), in `repository.py`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Sequence,
    SmallInteger,
    Table,
    Text,
    func,
)

from stockmanager.events.outbox import outbox_table, processed_events_table

SCHEMA = "metrics"
metadata = MetaData(schema=SCHEMA)

rollup_state = Table(
    "rollup_state",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("timezone", Text, nullable=False),
    Column("sealed_through", Date),
    Column("sale_watermark", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("refreshed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

dirty_mark_seq = Sequence("dirty_mark_seq", metadata=metadata)

dirty_days = Table(
    "dirty_days",
    metadata,
    Column("day", Date, primary_key=True),
    Column("mark", BigInteger, dirty_mark_seq, nullable=False),
    Column("marked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sales_day_hour = Table(
    "sales_day_hour",
    metadata,
    Column("day", Date, primary_key=True),
    Column("hour", SmallInteger, primary_key=True),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("sales", Integer, nullable=False),
    Column("units", BigInteger, nullable=False),
)

sales_day_vendor = Table(
    "sales_day_vendor",
    metadata,
    Column("day", Date, primary_key=True),
    Column("vendor_id", BigInteger, primary_key=True),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("sales", Integer, nullable=False),
    Column("units", BigInteger, nullable=False),
)

sales_day_item = Table(
    "sales_day_item",
    metadata,
    Column("day", Date, primary_key=True),
    Column("item_id", BigInteger, primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
)

sales_month_item = Table(
    "sales_month_item",
    metadata,
    Column("month", Date, primary_key=True),
    Column("item_id", BigInteger, primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
)

memo_keys = Table(
    "memo_keys",
    metadata,
    Column("cache_key", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

item_sums = Table(
    "item_sums",
    metadata,
    Column(
        "cache_key",
        Text,
        ForeignKey(memo_keys.c.cache_key, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("item_id", BigInteger, primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
)

sales_sums = Table(
    "sales_sums",
    metadata,
    Column(
        "cache_key",
        Text,
        ForeignKey(memo_keys.c.cache_key, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", SmallInteger, primary_key=True),
    Column("k", BigInteger, primary_key=True),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("sales", BigInteger, nullable=False),
    Column("units", BigInteger, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
