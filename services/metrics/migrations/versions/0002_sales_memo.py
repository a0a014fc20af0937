"""metrics memo: per-day, per-slot and per-seller sums next to the per-product sums

Revision ID: metrics_0002
Revises: metrics_0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "metrics_0002"
down_revision: str | None = "metrics_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        -- One registry of memo entries for every family of sums (memo.py).
        ALTER TABLE metrics.item_sums_keys RENAME TO memo_keys;
        -- Sales of the covered days of one report shape: kind 0 per day, 1 per weekday-hour,
        -- 2 previous-window totals, 3 / 4 per seller in the current / previous window.
        CREATE UNLOGGED TABLE metrics.sales_sums (
            cache_key     text     NOT NULL
                              REFERENCES metrics.memo_keys (cache_key) ON DELETE CASCADE,
            kind          smallint NOT NULL,
            k             bigint   NOT NULL,
            revenue_cents bigint   NOT NULL,
            sales         bigint   NOT NULL,
            units         bigint   NOT NULL,
            PRIMARY KEY (cache_key, kind, k) INCLUDE (revenue_cents, sales, units)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE metrics.sales_sums;
        ALTER TABLE metrics.memo_keys RENAME TO item_sums_keys;
        """
    )
