"""products: record_initial_stock, the ledger's first rows for products inserted with their stock

The CSV import creates up to 50,000 products in one request. Inserting them empty and then
moving their stock with `apply_stock_movements` writes every new row twice: the stock UPDATE is
not a HOT update (quantity is indexed), so each row gets a second entry in all eleven indexes,
three of them trigram GIN indexes (measured on 50,000 rows: ~4.6 s of PostgreSQL CPU for the
UPDATE on top of ~3.8 s for the INSERT; bench/results/csv.md). Instead the import inserts new
products with their stock and this function writes the ledger row that the stock function would
have written (delta = quantity, quantity_after = quantity), in the same transaction.

It only ever records a *first* stock: an item that already has ledger rows is refused (22023
`stock_already_recorded`), so it cannot be used to change stock behind the stock function's
back. Items with no stock get no row (the stock function skips zero deltas too).

Revision ID: products_0004
Revises: products_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0004"
down_revision: str | None = "products_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger reasons (products_0001's REASONS; stockmanager.contracts.stock.REASONS).
REASONS = ("sale", "sale_edit", "product_update", "bulk_stock", "import", "initial")

INITIAL_STOCK_FUNCTION = """
CREATE FUNCTION products.record_initial_stock(
    p_item_ids       bigint[],
    p_reason         text,
    p_reference      text,
    p_actor_id       bigint,
    p_actor_username text
) RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_recorded bigint;
    v_written  int;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN (__REASONS__) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid_reason',
            DETAIL = coalesce(p_reason, 'NULL');
    END IF;
    SELECT m.item_id INTO v_recorded
      FROM products.stock_movements AS m
     WHERE m.item_id = ANY (p_item_ids)
     LIMIT 1;
    IF v_recorded IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'stock_already_recorded',
            DETAIL = v_recorded::text;
    END IF;
    INSERT INTO products.stock_movements
        (item_id, delta, quantity_after, reason, reference, actor_id, actor_username)
    SELECT it.id, it.quantity, it.quantity, p_reason, p_reference, p_actor_id, p_actor_username
      FROM products.items AS it
     WHERE it.id = ANY (p_item_ids) AND it.quantity <> 0
     ORDER BY it.id;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$fn$;
"""


def upgrade() -> None:
    reasons = ", ".join(f"'{reason}'" for reason in REASONS)
    op.execute(INITIAL_STOCK_FUNCTION.replace("__REASONS__", reasons))


def downgrade() -> None:
    op.execute("DROP FUNCTION products.record_initial_stock(bigint[], text, text, bigint, text)")
