"""products: stock functions whose plans are linear in the number of items

products_0005's refusal check joined the movements to the items and took the first bad one
with `ORDER BY id LIMIT 1`. Nothing is bad in the usual call, but the planner cannot know that
(`quantity + delta < 0` gets a default selectivity of about one half), so for a big call it
expected to stop after a few rows and picked a nested loop that rescans the movement list for
every item: n² join-filter steps that all fail. A CSV import updating 50,000 products spent
345 s there (bench/results/csv.md); 20,000 items took 38 s instead of 1.1 s.

apply_stock_movements keeps its signature, result rows, refusals and lock order. The shape now
leaves the planner no quadratic choice:
- the rows are locked (ascending id, one statement) and read in the same statement, into
  arrays in id order: the stock every check and ledger row uses is the locked one;
- the refusal check, the ledger rows and the result rows are computed from those arrays
  (unnest, no join): any plan of them is one pass;
- the only joins left (the lock and the UPDATE) have no LIMIT, so the planner costs them for
  all their rows; a missing item is found with a set difference, not a LIMIT.
tests/products/test_stock_function_plans.py counts the rows the plans touch (no timing).

Plan caching, set per function call (a SET clause, so the caller's setting is back on return):
- a call with more than BIG_BATCH items plans its statements with its values
  (force_custom_plan); a plan cached for a sale's few lines assumes about ten items;
- everything else, in particular the foreign-key check of each ledger row (one query per row,
  fired by the ledger INSERT), uses PostgreSQL's default plan caching. The products service
  forces custom plans per session (services/products/app.py, for its LIKE searches), which
  re-planned 50,000 foreign-key checks per import: 0.81 s instead of 0.16 s of PostgreSQL.

record_initial_stock (products_0004) is replaced for the same two reasons: same signature,
result and refusals (the item named by `stock_already_recorded` is now the lowest id); its
ledger rows are written from arrays read first, with cached foreign-key plans.

Revision ID: products_0006
Revises: products_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0006"
down_revision: str | None = "products_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger reasons (products_0001's REASONS; stockmanager.contracts.stock.REASONS).
REASONS = ("sale", "sale_edit", "product_update", "bulk_stock", "import", "initial")
# Above this many distinct items a call is planned for its size (a sale has a few lines; the
# CSV import up to 50,000). Planning costs ~0.25 ms per call, nothing next to a big batch.
BIG_BATCH = 100

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
SET plan_cache_mode = auto
AS $fn$
#variable_conflict use_column
DECLARE
    -- The summed movements, ascending id; after the lock, the locked rows in the same order.
    v_ids      bigint[];
    v_deltas   bigint[];
    v_found    bigint[];
    v_names    text[];
    v_barcodes text[];
    v_prices   numeric[];
    v_before   int[];
    v_mins     int[];
    v_statuses smallint[];
    v_missing  bigint;
    v_bad      record;
    v_moving   int;
    v_changed  int;
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
    IF cardinality(v_ids) > __BIG_BATCH__ THEN  -- until the ledger INSERT below
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;

    -- Every caller locks in the same (ascending id) order, so concurrent callers queue up
    -- instead of deadlocking. FOR UPDATE returns each row as it is once locked (a concurrent
    -- change committed meanwhile included), so what is read here is what the changes apply to.
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.name ORDER BY l.id),
           array_agg(l.barcode ORDER BY l.id), array_agg(l.price ORDER BY l.id),
           array_agg(l.quantity ORDER BY l.id), array_agg(l.min_quantity ORDER BY l.id),
           array_agg(l.status ORDER BY l.id)
      INTO v_found, v_names, v_barcodes, v_prices, v_before, v_mins, v_statuses
      FROM (SELECT it.id, it.name::text AS name, it.barcode::text AS barcode, it.price,
                   it.quantity, it.min_quantity, it.status
              FROM unnest(v_ids) AS w(id)
              JOIN products.items AS it ON it.id = w.id
             ORDER BY it.id
               FOR UPDATE OF it) AS l;

    -- v_ids has no duplicates, so equal counts mean the same ids: the arrays line up.
    IF cardinality(v_found) IS DISTINCT FROM cardinality(v_ids) THEN
        SELECT min(x.id) INTO v_missing
          FROM (SELECT unnest(v_ids) EXCEPT SELECT unnest(v_found)) AS x(id);
        RAISE EXCEPTION USING ERRCODE = 'SM404', MESSAGE = 'item_not_found',
            DETAIL = v_missing::text;
    END IF;

    -- The first item (in id order) that cannot take its change refuses the whole call.
    SELECT w.id, w.name, w.q, w.d, w.q::bigint + w.d < 0 AS short
      INTO v_bad
      FROM unnest(v_ids, v_names, v_before, v_deltas) AS w(id, name, q, d)
     WHERE w.q::bigint + w.d < 0 OR w.q::bigint + w.d > 2147483647
     ORDER BY w.id
     LIMIT 1;
    IF FOUND THEN
        IF v_bad.short THEN
            RAISE EXCEPTION USING ERRCODE = 'SM409', MESSAGE = 'insufficient_stock',
                DETAIL = json_build_object(
                    'item_id', v_bad.id, 'name', v_bad.name,
                    'requested', -v_bad.d, 'available', v_bad.q)::text;
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

    -- One ledger row per moved item, in id order (ledger ids follow change order). Its plan
    -- reads arrays only; the foreign-key check of each row reuses its cached plan.
    PERFORM set_config('plan_cache_mode', 'auto', true);
    INSERT INTO products.stock_movements
        (item_id, delta, quantity_after, reason, reference, actor_id, actor_username)
    SELECT w.id, w.d::int, (w.q + w.d)::int, p_reason, p_reference, p_actor_id,
           p_actor_username
      FROM unnest(v_ids, v_before, v_deltas) AS w(id, q, d)
     WHERE w.d <> 0
     ORDER BY w.id;

    RETURN QUERY
    SELECT w.id, w.name, w.barcode, w.price::numeric(12,2), w.q, (w.q + w.d)::int, w.m, w.s,
           w.s = 1 AND w.q > w.m AND w.q + w.d <= w.m
      FROM unnest(v_ids, v_names, v_barcodes, v_prices, v_before, v_deltas, v_mins,
                  v_statuses) AS w(id, name, barcode, price, q, d, m, s)
     ORDER BY w.id;
END;
$fn$;
"""


INITIAL_STOCK_FUNCTION = """
CREATE OR REPLACE FUNCTION products.record_initial_stock(
    p_item_ids       bigint[],
    p_reason         text,
    p_reference      text,
    p_actor_id       bigint,
    p_actor_username text
) RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
    v_recorded   bigint;
    v_ids        bigint[];
    v_quantities int[];
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN (__REASONS__) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'invalid_reason',
            DETAIL = coalesce(p_reason, 'NULL');
    END IF;
    -- No LIMIT: with one, a big ledger could be read from its start hoping for an early hit.
    SELECT min(m.item_id) INTO v_recorded
      FROM products.stock_movements AS m
     WHERE m.item_id = ANY (p_item_ids);
    IF v_recorded IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'stock_already_recorded',
            DETAIL = v_recorded::text;
    END IF;
    SELECT array_agg(it.id ORDER BY it.id), array_agg(it.quantity ORDER BY it.id)
      INTO v_ids, v_quantities
      FROM products.items AS it
     WHERE it.id = ANY (p_item_ids) AND it.quantity <> 0;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    -- The foreign-key check of each ledger row reuses its cached plan.
    PERFORM set_config('plan_cache_mode', 'auto', true);
    INSERT INTO products.stock_movements
        (item_id, delta, quantity_after, reason, reference, actor_id, actor_username)
    SELECT w.id, w.q, w.q, p_reason, p_reference, p_actor_id, p_actor_username
      FROM unnest(v_ids, v_quantities) AS w(id, q)
     ORDER BY w.id;
    RETURN cardinality(v_ids);
END;
$fn$;
"""


def upgrade() -> None:
    reasons = ", ".join(f"'{reason}'" for reason in REASONS)
    op.execute(
        STOCK_FUNCTION.replace("__REASONS__", reasons).replace("__BIG_BATCH__", str(BIG_BATCH))
    )
    op.execute(INITIAL_STOCK_FUNCTION.replace("__REASONS__", reasons))


def downgrade() -> None:
    # products_0005's function, exactly as it was created.
    from importlib import import_module

    previous = import_module("services.products.migrations.versions.0005_set_based_stock_function")
    initial = import_module("services.products.migrations.versions.0004_initial_stock")
    reasons = ", ".join(f"'{reason}'" for reason in REASONS)
    op.execute(previous.STOCK_FUNCTION.replace("__REASONS__", reasons))
    # products_0004's function, exactly as it was created (CREATE OR REPLACE drops the SET
    # clause too).
    op.execute(
        initial.INITIAL_STOCK_FUNCTION.replace(
            "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
        ).replace("__REASONS__", reasons)
    )
