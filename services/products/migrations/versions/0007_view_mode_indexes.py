"""products: partial indexes for the in-stock and out-of-stock view modes, per sort

`GET /api/products_all?view_mode=in_stock` filters on `quantity > min_quantity`, a comparison
of two columns that no plain index serves: every page counted its total with a sequential scan
of the whole table (~70 % of the rows match) and walked the sort index fetching heap rows to
test the filter. With one partial index per sort column (the low-stock slice's pattern,
products_0001) the total is an index-only scan of the smallest one and a page's ids an
index-only walk: in_stock by stock desc, page 100 of 50,000 products, 4.5 -> 2.2 ms of
PostgreSQL (bench/results/products.md). The out-of-stock slice (`quantity = 0`, both list
endpoints) gets the name and price sorts the same way (its stock sort is the plain quantity
index), so that every list without a search has an index-only page walk whatever plan serves
it, generic plans included (repository.list_page).

Revision ID: products_0007
Revises: products_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0007"
down_revision: str | None = "products_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The predicate is written as the service writes it (repository._where), so the planner
    # can prove a query's filter implies it.
    op.execute(
        """
        CREATE INDEX ix_items_in_stock_quantity ON products.items (quantity, id)
            WHERE quantity > min_quantity;
        CREATE INDEX ix_items_in_stock_price ON products.items (price, id)
            WHERE quantity > min_quantity;
        CREATE INDEX ix_items_in_stock_name ON products.items (name_folded, id)
            WHERE quantity > min_quantity;
        CREATE INDEX ix_items_out_of_stock_price ON products.items (price, id)
            WHERE quantity = 0;
        CREATE INDEX ix_items_out_of_stock_name ON products.items (name_folded, id)
            WHERE quantity = 0;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX products.ix_items_in_stock_quantity;
        DROP INDEX products.ix_items_in_stock_price;
        DROP INDEX products.ix_items_in_stock_name;
        DROP INDEX products.ix_items_out_of_stock_price;
        DROP INDEX products.ix_items_out_of_stock_name;
        """
    )
