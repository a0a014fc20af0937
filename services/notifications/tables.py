"""The `notifications` schema, plus the users service's published `users.directory` view."""

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
    SmallInteger,
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

# Read-only view published by the users service (never written here).
users_metadata = MetaData(schema="users")
users_directory = Table(
    "directory",
    users_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", String(30)),
    Column("email", String(100)),
    Column("role", String(20)),
    Column("status", SmallInteger),
    Column("application", String(10)),
)
