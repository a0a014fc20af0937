"""sales schema: sales.record_sale, a whole checkout in one statement

Revision ID: sales_0003
Revises: sales_0002
Create Date: 2026-12-07

Before, a sale was five round trips on the checkout connection (BEGIN, catalogue read, stock +
header + lines, outbox insert, COMMIT); the driver's per-statement work was about half of the
sales service's CPU per sale (bench/results/sales.md). This function does all of it in one
call, so a sale without an Idempotency-Key is one statement in its own transaction:

1. the products asked for, from the published `products.catalog` view: the first unknown id
   in the order asked (SM404, as the stock function), then every disabled product at once
   (SA423, DETAIL = JSON array of their names in the order asked); a barcode sale whose barcode
   is unknown is SA404;
2. a sale id from the sequence, then `products.apply_stock_movements` (rows locked in id order,
   guarded decrement, ledger rows; SM409 on a shortage); a product disabled between the read
   and the lock is SA423 too;
3. the header and the lines at the names and prices read under the row locks;
4. the outbox rows: `sale.created` and one `product.stock_low` per crossing. The caller passes
   each envelope with everything it knows (ids, actor, request, time: services/sales/events.py
   `sale_created_template` / `stock_low_template`); this function adds what only the locked rows
   know (sale id, items, total; the product's name and levels). tests/sales/
   test_record_sale_events.py binds the result to the Python builders of the same events;
5. one row per line, in the order asked: what the response is built from.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "sales_0003"
down_revision: str | None = "sales_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_SALE = """
CREATE FUNCTION sales.record_sale(
    p_lines          jsonb,   -- [{"item_id": <bigint>, "quantity": <int>}], duplicates summed
    p_barcode        text,    -- instead of p_lines: one line of p_quantity of this barcode
    p_quantity       int,
    p_vendor_id      bigint,
    p_vendor_username text,
    p_payment_method text,
    p_actor_id       bigint,
    p_actor_username text,
    p_sale_event     jsonb,   -- sale.created envelope; data without sale_id, total, items
    p_low_event      jsonb    -- product.stock_low envelope; data without the product's fields
) RETURNS TABLE (
    sale_id bigint, sold_at timestamptz, item_id bigint, item_name text,
    unit_price numeric(12,2), quantity int
)
LANGUAGE plpgsql
AS $fn$
#variable_conflict use_column
DECLARE
    v_lines   jsonb := p_lines;
    v_sale    bigint;
    v_now     timestamptz := now();
    v_missing bigint;
    v_names   jsonb;
    m_id      bigint[];
    m_name    text[];
    m_price   numeric[];
    m_after   int[];
    m_min     int[];
    m_status  smallint[];
    m_low     boolean[];
BEGIN
    IF p_barcode IS NOT NULL THEN
        SELECT jsonb_build_array(jsonb_build_object('item_id', c.id, 'quantity', p_quantity))
          INTO v_lines
          FROM products.catalog AS c
         WHERE c.barcode = p_barcode;
        IF v_lines IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SA404', MESSAGE = 'barcode_not_found';
        END IF;
    END IF;

    SELECT (l.e ->> 'item_id')::bigint INTO v_missing
      FROM jsonb_array_elements(v_lines) WITH ORDINALITY AS l(e, n)
     WHERE NOT EXISTS (
         SELECT 1 FROM products.catalog AS c WHERE c.id = (l.e ->> 'item_id')::bigint)
     ORDER BY l.n
     LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SM404', MESSAGE = 'item_not_found',
            DETAIL = v_missing::text;
    END IF;
    SELECT jsonb_agg(c.name ORDER BY l.n) INTO v_names
      FROM jsonb_array_elements(v_lines) WITH ORDINALITY AS l(e, n)
      JOIN products.catalog AS c ON c.id = (l.e ->> 'item_id')::bigint
     WHERE c.status <> 1;
    IF v_names IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SA423', MESSAGE = 'products_unavailable',
            DETAIL = v_names::text;
    END IF;

    v_sale := nextval(pg_get_serial_sequence('sales.sales', 'id'));
    SELECT array_agg(m.item_id ORDER BY m.n), array_agg(m.name ORDER BY m.n),
           array_agg(m.price ORDER BY m.n), array_agg(m.quantity_after ORDER BY m.n),
           array_agg(m.min_quantity ORDER BY m.n), array_agg(m.status ORDER BY m.n),
           array_agg(m.crossed_low ORDER BY m.n)
      INTO m_id, m_name, m_price, m_after, m_min, m_status, m_low
      FROM products.apply_stock_movements(
               (SELECT jsonb_agg(jsonb_build_object(
                           'item_id', l.e -> 'item_id',
                           'delta', -((l.e ->> 'quantity')::int)))
                  FROM jsonb_array_elements(v_lines) AS l(e)),
               'sale', left('sale:' || v_sale, 100), p_actor_id, p_actor_username)
           WITH ORDINALITY AS m(item_id, name, barcode, price, quantity_before, quantity_after,
                                min_quantity, status, crossed_low, n);

    -- Disabled while we waited for the row lock: refused like a disabled product.
    SELECT jsonb_agg(m.name ORDER BY l.n) INTO v_names
      FROM jsonb_array_elements(v_lines) WITH ORDINALITY AS l(e, n)
      JOIN unnest(m_id, m_name, m_status) AS m(id, name, status)
        ON m.id = (l.e ->> 'item_id')::bigint
     WHERE m.status <> 1;
    IF v_names IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SA423', MESSAGE = 'products_unavailable',
            DETAIL = v_names::text;
    END IF;
    -- The stock function answers for every item it is given; anything else would record a
    -- sale without some of its lines.
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_lines) AS l(e)
                WHERE NOT (l.e ->> 'item_id')::bigint = ANY (coalesce(m_id, '{}'))) THEN
        RAISE EXCEPTION USING ERRCODE = 'XX000', MESSAGE = 'stock_function_missed_a_line';
    END IF;

    INSERT INTO sales.sales
        (id, created_at, updated_at, vendor_id, vendor_username, payment_method)
    VALUES (v_sale, v_now, v_now, p_vendor_id, p_vendor_username, p_payment_method);

    RETURN QUERY
    WITH sold AS (
        SELECT l.n, m.id, m.name, m.price, (l.e ->> 'quantity')::int AS qty
          FROM jsonb_array_elements(v_lines) WITH ORDINALITY AS l(e, n)
          JOIN unnest(m_id, m_name, m_price) AS m(id, name, price)
            ON m.id = (l.e ->> 'item_id')::bigint
    ), added AS (
        INSERT INTO sales.sale_lines (sale_id, item_id, item_name, quantity, unit_price)
        SELECT v_sale, s.id, s.name, s.qty, s.price FROM sold AS s ORDER BY s.n
    ), sale_data AS (
        -- SaleCreated (stockmanager/contracts/events.py); money as JSON numbers (floats).
        SELECT (p_sale_event -> 'data') || jsonb_build_object(
                   'sale_id', v_sale,
                   'total', sum(s.qty * s.price)::float8,
                   'items', jsonb_agg(jsonb_build_object(
                       'item_id', s.id, 'name', s.name, 'quantity', s.qty,
                       'unit_price', s.price::float8, 'subtotal', (s.qty * s.price)::float8)
                       ORDER BY s.n)) AS d
          FROM sold AS s
    ), events AS (
        SELECT 0::bigint AS n,
               p_sale_event || jsonb_build_object(
                   'entity', jsonb_build_object('type', 'sale', 'id', v_sale),
                   'data', sd.d, 'after', sd.d) AS e
          FROM sale_data AS sd
        UNION ALL
        -- StockLow, one per crossing, in the stock function's (id) order.
        SELECT c.n, p_low_event || jsonb_build_object(
                   'id', gen_random_uuid()::text,
                   'entity', jsonb_build_object('type', 'product', 'id', c.id),
                   'data', (p_low_event -> 'data') || jsonb_build_object(
                       'item_id', c.id, 'name', c.name, 'quantity', c.level,
                       'min_quantity', c.minimum))
          FROM unnest(m_id, m_name, m_after, m_min, m_low)
               WITH ORDINALITY AS c(id, name, level, minimum, low, n)
         WHERE c.low
    ), published AS (
        INSERT INTO sales.outbox (id, type, payload)
        SELECT (ev.e ->> 'id')::uuid, ev.e ->> 'type', ev.e FROM events AS ev ORDER BY ev.n
    )
    SELECT v_sale, v_now, s.id, s.name, s.price::numeric(12,2), s.qty FROM sold AS s ORDER BY s.n;
END;
$fn$;
"""


def upgrade() -> None:
    op.execute(RECORD_SALE)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION sales.record_sale(jsonb, text, int, bigint, text, text, bigint, text,"
        " jsonb, jsonb)"
    )
