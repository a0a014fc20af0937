"""The `users` schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

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
    Index(
        "ix_users_pending_created",
        "created_at",
        "id",
        postgresql_where=text("application = 'pending'"),
    ),
)

# One row per user: a new code replaces the previous one (only the newest is valid).
password_resets = Table(
    "password_resets",
    metadata,
    Column(
        "user_id",
        BigInteger,
        ForeignKey("users.users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("code_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", SmallInteger, nullable=False, server_default=text("0")),
    Column("verified_at", DateTime(timezone=True)),
    Column("window_started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("requests_in_window", Integer, nullable=False, server_default=text("1")),
    # Daily caps (24 h from day_started_at), kept across re-issues: codes issued, wrong codes.
    Column("day_started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("requests_today", Integer, nullable=False, server_default=text("1")),
    Column("wrong_codes_today", Integer, nullable=False, server_default=text("0")),
)

# Overrides of the whitelisted business settings; defaults live in code.
settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", BigInteger),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
