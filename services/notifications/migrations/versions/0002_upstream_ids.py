"""notifications schema: upstream_ids, the map of rows brought over by import-upstream

Revision ID: notifications_0002
Revises: notifications_0001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from stockmanager.migration_ddl import upstream_ids_ddl

revision: str = "notifications_0002"
down_revision: str | None = "notifications_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(upstream_ids_ddl("notifications"))


def downgrade() -> None:
    op.execute("DROP TABLE notifications.upstream_ids")
