"""The `audit` schema (mirrors migrations/versions/0001_audit.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

from stockmanager.events.outbox import processed_events_table

SCHEMA = "audit"
metadata = MetaData(schema=SCHEMA)

# Append-only: a statement trigger refuses UPDATE, DELETE and TRUNCATE for every role
# (see the migration). Rows are only ever inserted by the event consumer.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    # The envelope id: one record per event, even if the consumer's bookkeeping is bypassed.
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("user_id", BigInteger),  # null for anonymous actors (failed login, register, ...)
    Column("username", Text),
    Column("role", String(20)),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", BigInteger),
    Column("old_value", JSONB),
    Column("new_value", JSONB),
    Column("description", Text, nullable=False),
    Column("ip_address", INET),
    Column("request_id", Text),
    Column("status", String(10), nullable=False),
    CheckConstraint("status IN ('success','error')", name="ck_audit_log_status"),
    CheckConstraint("action = lower(action)", name="ck_audit_log_action_lower"),
    CheckConstraint("entity_type = lower(entity_type)", name="ck_audit_log_entity_type_lower"),
    Index("ix_audit_log_time", text("occurred_at DESC"), text("id DESC")),
    Index("ix_audit_log_user_time", "user_id", text("occurred_at DESC"), text("id DESC")),
    Index("ix_audit_log_action_time", "action", text("occurred_at DESC"), text("id DESC")),
    Index("ix_audit_log_entity_time", "entity_type", "entity_id", "occurred_at", "id"),
    Index(
        "ix_audit_log_bulk_items",
        "new_value",
        postgresql_using="gin",
        postgresql_ops={"new_value": "jsonb_path_ops"},
        postgresql_where=text("entity_id IS NULL"),
    ),
)

processed_events = processed_events_table(metadata)
