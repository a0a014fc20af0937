"""The `webhooks` schema: subscriptions, their deliveries (the delivery log), the bodies of the
events delivered (once per event), and the event tables every service has (outbox, processed
events)."""

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
from sqlalchemy.dialects.postgresql import ARRAY, UUID

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

# The body sent for an event (the versioned webhook payload, events.webhook_payload, as JSON
# text: the exact bytes signed and sent, on every attempt and redelivery), shared by the
# event's deliveries. Kept while a delivery refers to it (retention: repository.prune_log).
payloads = Table(
    "payloads",
    metadata,
    Column("event_id", UUID(as_uuid=False), primary_key=True),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_payloads_created", "created_at"),
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
    # Its body: payloads.event_id (no foreign key: the check would lock the payload row
    # once per delivery; the fan-out writes both in one statement).
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("event_type", String(64), nullable=False),
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
    # One delivery per (subscription, event): a redelivered event changes nothing. Event
    # first: the retention looks up an event's deliveries with it.
    UniqueConstraint("event_id", "subscription_id", name="uq_deliveries_event_subscription"),
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
