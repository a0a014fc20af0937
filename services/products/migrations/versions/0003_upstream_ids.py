"""products schema: upstream_ids, the map of rows brought over by `stockmanager import-upstream`

Revision ID: products_0003
Revises: products_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from stockmanager.migration_ddl import upstream_ids_ddl

revision: str = "products_0003"
down_revision: str | None = "products_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(upstream_ids_ddl("products"))


def downgrade() -> None:
    op.execute("DROP TABLE products.upstream_ids")
