"""products: apply_stock_movements does its work set-based instead of item by item

Same signature, result rows, refusals and lock order as products_0001's function; only the
per-item loop (a SELECT, an UPDATE and an INSERT per item) became one statement each for the
whole batch. For the few lines of a sale that changes little; for the CSV import's 50,000 stock
changes it is the difference between 50,000 x 3 statements and 3 (bench/results/csv.md).

Refusals stay the loop's: the first item in id order whose new stock would be negative (SM409,
JSON detail) or beyond integer range (22003) is reported, and nothing is written.

Revision ID: products_0005
Revises: products_0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0005"
down_revision: str | None = "products_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger reasons (products_0001's REASONS; stockmanager.contracts.stock.REASONS).
REASONS = ("sale", "sale_edit", "product_update", "bulk_stock", "import", "initial")

STOCK_FUNCTION = """
CREATE OR REPLACE FUNCTION products.apply_stock_movements(
    p_movements      jsonb,
    p_reason         text,
    p_reference      text,
    p_actor_id       bigint,
    p_actor_username text
) RETURNS TABLE (
    item_id bigint, name text, barcode text, price numeric(12,2),
    quantity_before int, quantity_after int, min_quantity int, status smallint,
    crossed_low boolean
)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_ids     bigint[];
    v_deltas  bigint[];
    v_missing bigint;
    v_bad     record;
    v_moving  int;
    v_changed int;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN (__REASONS__) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid_reason',
            DETAIL = coalesce(p_reason, 'NULL');
    END IF;
    IF p_movements IS NULL OR jsonb_typeof(p_movements) <> 'array' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_movements) AS m(e)
         WHERE NOT CASE
             WHEN jsonb_typeof(m.e) = 'object'
              AND jsonb_typeof(m.e -> 'item_id') = 'number'
              AND jsonb_typeof(m.e -> 'delta') = 'number'
             THEN (m.e ->> 'item_id')::numeric BETWEEN 1 AND 9223372036854775807
              AND (m.e ->> 'item_id')::numeric % 1 = 0
              AND (m.e ->> 'delta')::numeric BETWEEN -2147483648 AND 2147483647
              AND (m.e ->> 'delta')::numeric % 1 = 0
             ELSE false
         END
    ) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid_movements',
            DETAIL = 'expected [{"item_id": <bigint>, "delta": <int>}, ...]';
    END IF;

    -- Several entries for one item are summed first; then work in ascending id order.
    SELECT array_agg(s.id ORDER BY s.id), array_agg(s.d ORDER BY s.id)
      INTO v_ids, v_deltas
      FROM (SELECT (m.e ->> 'item_id')::bigint AS id, sum((m.e ->> 'delta')::bigint)::bigint AS d
              FROM jsonb_array_elements(p_movements) AS m(e)
             GROUP BY 1) AS s;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;

    -- Every caller locks in the same (ascending id) order, so concurrent callers queue up
    -- instead of deadlocking.
    PERFORM 1 FROM products.items AS it WHERE it.id = ANY (v_ids) ORDER BY it.id FOR UPDATE;

    SELECT w.id INTO v_missing
      FROM unnest(v_ids) AS w(id)
     WHERE NOT EXISTS (SELECT 1 FROM products.items AS it WHERE it.id = w.id)
     ORDER BY w.id
     LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SM404', MESSAGE = 'item_not_found',
            DETAIL = v_missing::text;
    END IF;

    -- The rows are locked: what is read now is what the changes apply to. The first item (in
    -- id order) that cannot take its change refuses the whole call.
    SELECT it.id, it.name, it.quantity, w.d, it.quantity::bigint + w.d < 0 AS short
      INTO v_bad
      FROM unnest(v_ids, v_deltas) AS w(id, d)
      JOIN products.items AS it ON it.id = w.id
     WHERE it.quantity::bigint + w.d < 0 OR it.quantity::bigint + w.d > 2147483647
     ORDER BY w.id
     LIMIT 1;
    IF FOUND THEN
        IF v_bad.short THEN
            RAISE EXCEPTION USING ERRCODE = 'SM409', MESSAGE = 'insufficient_stock',
                DETAIL = json_build_object(
                    'item_id', v_bad.id, 'name', v_bad.name,
                    'requested', -v_bad.d, 'available', v_bad.quantity)::text;
        END IF;
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = 'stock_out_of_range',
            DETAIL = v_bad.id::text;
    END IF;

    -- Guarded even though the rows are locked and checked: stock can never go below zero.
    UPDATE products.items AS it
       SET quantity = (it.quantity + w.d)::int, updated_at = now()
      FROM unnest(v_ids, v_deltas) AS w(id, d)
     WHERE it.id = w.id AND w.d <> 0 AND it.quantity + w.d >= 0;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    SELECT count(*) INTO v_moving FROM unnest(v_deltas) AS w(d) WHERE w.d <> 0;
    IF v_changed <> v_moving THEN  -- cannot happen under the locks: an internal error
        RAISE EXCEPTION USING MESSAGE = 'stock_guard_violated';
    END IF;

    -- One ledger row per moved item, in id order (ledger ids follow change order).
    INSERT INTO products.stock_movements
        (item_id, delta, quantity_after, reason, reference, actor_id, actor_username)
    SELECT it.id, w.d::int, it.quantity, p_reason, p_reference, p_actor_id, p_actor_username
      FROM unnest(v_ids, v_deltas) AS w(id, d)
      JOIN products.items AS it ON it.id = w.id
     WHERE w.d <> 0
     ORDER BY it.id;

    RETURN QUERY
    SELECT it.id, it.name::text, it.barcode::text, it.price::numeric(12,2),
           (it.quantity - w.d)::int, it.quantity, it.min_quantity, it.status,
           it.status = 1 AND it.quantity - w.d > it.min_quantity
               AND it.quantity <= it.min_quantity
      FROM unnest(v_ids, v_deltas) AS w(id, d)
      JOIN products.items AS it ON it.id = w.id
     ORDER BY it.id;
END;
$fn$;
"""


def upgrade() -> None:
    reasons = ", ".join(f"'{reason}'" for reason in REASONS)
    op.execute(STOCK_FUNCTION.replace("__REASONS__", reasons))


def downgrade() -> None:
    # products_0001's loop, exactly as it was created.
    from importlib import import_module

    initial = import_module("services.products.migrations.versions.0001_products")
    reasons = ", ".join(f"'{reason}'" for reason in REASONS)
    op.execute(
        initial.STOCK_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
            "__REASONS__", reasons
        )
    )
