"""users schema: per-account daily caps on password-reset codes issued and wrong codes tried

Revision ID: users_0003
Revises: users_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "users_0003"
down_revision: str | None = "users_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        -- A day (24 h from day_started_at) of one account's reset activity, kept across
        -- re-issues: codes issued and wrong codes tried, each capped by a setting.
        ALTER TABLE users.password_resets
            ADD COLUMN day_started_at    timestamptz NOT NULL DEFAULT now(),
            ADD COLUMN requests_today    integer     NOT NULL DEFAULT 1,
            ADD COLUMN wrong_codes_today integer     NOT NULL DEFAULT 0;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE users.password_resets
            DROP COLUMN wrong_codes_today,
            DROP COLUMN requests_today,
            DROP COLUMN day_started_at;
        """
    )
