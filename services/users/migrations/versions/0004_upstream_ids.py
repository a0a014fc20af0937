"""users schema: upstream_ids, the map of rows brought over by `stockmanager import-upstream`

Revision ID: users_0004
Revises: users_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from stockmanager.migration_ddl import upstream_ids_ddl

revision: str = "users_0004"
down_revision: str | None = "users_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(upstream_ids_ddl("users"))


def downgrade() -> None:
    op.execute("DROP TABLE users.upstream_ids")
