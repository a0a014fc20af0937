"""The `notifications` schema. Recipients are read through the users directory contract
(stockmanager.contracts.users_directory)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)

from stockmanager.events.outbox import outbox_table, processed_events_table

SCHEMA = "notifications"
metadata = MetaData(schema=SCHEMA)

NOTIFICATION_TYPES = ("info", "warning", "success", "error")

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # No foreign key: users live in another service's schema.
    Column("user_id", BigInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text),
    Column("type", String(10), nullable=False, server_default=text("'info'")),
    Column("action_url", Text),
    Column("is_read", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("type IN ('info','warning','success','error')", name="ck_notifications_type"),
    Index(
        "ix_notifications_user_read_created",
        "user_id",
        "is_read",
        text("created_at DESC"),
        text("id DESC"),
    ),
    Index("ix_notifications_user_created", "user_id", text("created_at DESC"), text("id DESC")),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
