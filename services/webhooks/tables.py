"""The `webhooks` schema: subscriptions, their deliveries (the delivery log), and the event
tables every service has (outbox, processed events)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from stockmanager.events.outbox import outbox_table, processed_events_table

SCHEMA = "webhooks"
metadata = MetaData(schema=SCHEMA)

# A delivery is `pending` (waiting for its next attempt, or being attempted under a lease),
# `succeeded` (a 2xx answer) or `failed` (given up: retry window over or subscription deleted).
DELIVERY_STATUSES = ("pending", "succeeded", "failed")

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("url", Text, nullable=False),
    # Event types, or the single element '*' for all of them.
    Column("events", ARRAY(String(64)), nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    # Fernet tokens (signing.py); the plain secret is shown once and never stored.
    Column("secret_encrypted", Text, nullable=False),
    Column("previous_secret_encrypted", Text),
    Column("previous_secret_expires_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("failing_since", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    Column("created_by", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_subscriptions_events", "events", postgresql_using="gin"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "subscription_id",
        BigInteger,
        ForeignKey(f"{SCHEMA}.subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("event_type", String(64), nullable=False),
    # The body sent (the versioned webhook payload, events.webhook_payload).
    Column("payload", JSONB, nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    # Due time of the next attempt; while an attempt runs, the end of its lease.
    Column("next_attempt_at", DateTime(timezone=True)),
    # Failing attempts are retried until then (creation or manual redelivery + retry window).
    Column("retry_until", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("response_status", Integer),
    Column("response_body", Text),
    Column("latency_ms", Integer),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    CheckConstraint("status IN ('pending','succeeded','failed')", name="ck_deliveries_status"),
    # One delivery per (subscription, event): a redelivered event changes nothing.
    UniqueConstraint("subscription_id", "event_id", name="uq_deliveries_subscription_event"),
    Index(
        "ix_deliveries_due",
        "subscription_id",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_log", "subscription_id", text("id DESC")),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
