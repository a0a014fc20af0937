"""The `users` schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

SCHEMA = "users"
metadata = MetaData(schema=SCHEMA)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("username", String(30), nullable=False),
    Column("email", String(100), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    Column("status", SmallInteger, nullable=False, server_default=text("1")),
    Column("application", String(10), nullable=False, server_default=text("'accepted'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('root','admin','vendedor')", name="ck_users_role"),
    CheckConstraint("status IN (0,1)", name="ck_users_status"),
    CheckConstraint(
        "application IN ('pending','accepted','rejected')", name="ck_users_application"
    ),
    # Case-insensitive uniqueness (decisions §5).
    Index("ux_users_username_lower", func.lower(text("username")), unique=True),
    Index("ux_users_email_lower", func.lower(text("email")), unique=True),
    # Exactly one root, enforced by the database itself (decisions §2).
    Index("ux_users_single_root", "role", unique=True, postgresql_where=text("role = 'root'")),
    Index("ix_users_created_at", "created_at", "id"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
