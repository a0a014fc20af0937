"""webhooks payloads: the body of an event stored once, not once per delivery

Revision ID: webhooks_0002
Revises: webhooks_0001
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "webhooks_0002"
down_revision: str | None = "webhooks_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        -- The JSON text sent (every subscription gets the same body for an event), written
        -- once per event: a sale's ~1 KB payload had been copied into each delivery row and
        -- into each of its row versions (bench/results/webhooks.md).
        CREATE TABLE webhooks.payloads (
            event_id    uuid        PRIMARY KEY,
            body        text        NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        -- The log's retention: payloads past it that no delivery refers to any more.
        CREATE INDEX ix_payloads_created ON webhooks.payloads (created_at);
        INSERT INTO webhooks.payloads (event_id, body, created_at)
        SELECT DISTINCT ON (event_id) event_id, CAST(payload AS text), created_at
          FROM webhooks.deliveries
         ORDER BY event_id, created_at;
        ALTER TABLE webhooks.deliveries DROP COLUMN payload;
        -- Same uniqueness, event first: the retention finds an event's deliveries with it.
        ALTER TABLE webhooks.deliveries DROP CONSTRAINT uq_deliveries_subscription_event;
        ALTER TABLE webhooks.deliveries
            ADD CONSTRAINT uq_deliveries_event_subscription UNIQUE (event_id, subscription_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhooks.deliveries DROP CONSTRAINT uq_deliveries_event_subscription;
        ALTER TABLE webhooks.deliveries
            ADD CONSTRAINT uq_deliveries_subscription_event UNIQUE (subscription_id, event_id);
        ALTER TABLE webhooks.deliveries ADD COLUMN payload jsonb;
        UPDATE webhooks.deliveries d SET payload = CAST(p.body AS jsonb)
          FROM webhooks.payloads p WHERE p.event_id = d.event_id;
        ALTER TABLE webhooks.deliveries ALTER COLUMN payload SET NOT NULL;
        DROP TABLE webhooks.payloads;
        """
    )
