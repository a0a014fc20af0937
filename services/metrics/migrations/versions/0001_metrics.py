"""metrics schema: per-day sales rollups of closed business days, their bookkeeping, event tables

Revision ID: metrics_0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from stockmanager.migration_ddl import event_tables_ddl

revision: str = "metrics_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        -- One row: how far the rollups reach. Days <= sealed_through (business time zone
        -- `timezone`) are aggregated, except days listed in dirty_days and days holding a sale
        -- with id > sale_watermark (inserted since the last refresh); all else is read live.
        CREATE TABLE metrics.rollup_state (
            id             smallint    PRIMARY KEY DEFAULT 1
                               CONSTRAINT ck_rollup_state_single CHECK (id = 1),
            timezone       text        NOT NULL,
            sealed_through date,
            sale_watermark bigint      NOT NULL DEFAULT 0,
            version        bigint      NOT NULL DEFAULT 0,
            refreshed_at   timestamptz NOT NULL DEFAULT now()
        );

        -- Closed days whose sales changed after they were aggregated (sale edits). `mark`
        -- changes on every re-mark, so a refresh only clears the marks it has seen.
        CREATE SEQUENCE metrics.dirty_mark_seq;
        CREATE TABLE metrics.dirty_days (
            day       date        PRIMARY KEY,
            mark      bigint      NOT NULL DEFAULT nextval('metrics.dirty_mark_seq'),
            marked_at timestamptz NOT NULL DEFAULT now()
        );

        -- Money in cents (exact, and integer sums are fast); counts of distinct sales are
        -- additive because a sale belongs to exactly one (day, hour, vendor).
        CREATE TABLE metrics.sales_day_hour (
            day           date     NOT NULL,
            hour          smallint NOT NULL,
            revenue_cents bigint   NOT NULL,
            sales         integer  NOT NULL,
            units         bigint   NOT NULL,
            PRIMARY KEY (day, hour) INCLUDE (revenue_cents, sales, units)
        );
        CREATE TABLE metrics.sales_day_vendor (
            day           date    NOT NULL,
            vendor_id     bigint  NOT NULL,
            revenue_cents bigint  NOT NULL,
            sales         integer NOT NULL,
            units         bigint  NOT NULL,
            PRIMARY KEY (day, vendor_id) INCLUDE (revenue_cents, sales, units)
        );
        CREATE TABLE metrics.sales_day_item (
            day           date   NOT NULL,
            item_id       bigint NOT NULL,
            units         bigint NOT NULL,
            revenue_cents bigint NOT NULL,
            PRIMARY KEY (day, item_id) INCLUDE (units, revenue_cents)
        );
        -- Sum of sales_day_item per calendar month (only over the days present there).
        CREATE TABLE metrics.sales_month_item (
            month         date   NOT NULL,
            item_id       bigint NOT NULL,
            units         bigint NOT NULL,
            revenue_cents bigint NOT NULL,
            PRIMARY KEY (month, item_id) INCLUDE (units, revenue_cents)
        );

        -- Memo of per-product sums over the covered days of one request shape (window,
        -- rollup version): a one-year window reads ~10k rows here instead of ~150k rollup
        -- rows. Keys embed the rollup version, so an entry never goes stale; old entries are
        -- dropped by the refresher. A cache: unlogged (emptied after a crash, not replicated).
        CREATE UNLOGGED TABLE metrics.item_sums_keys (
            cache_key  text        PRIMARY KEY,
            version    bigint      NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNLOGGED TABLE metrics.item_sums (
            cache_key     text   NOT NULL
                              REFERENCES metrics.item_sums_keys (cache_key) ON DELETE CASCADE,
            item_id       bigint NOT NULL,
            units         bigint NOT NULL,
            revenue_cents bigint NOT NULL,
            PRIMARY KEY (cache_key, item_id) INCLUDE (units, revenue_cents)
        );
        """
    )
    op.execute(event_tables_ddl("metrics"))


def downgrade() -> None:
    op.execute("DROP SCHEMA metrics CASCADE")
