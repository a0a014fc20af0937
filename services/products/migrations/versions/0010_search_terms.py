"""products: the trigram search index moves off `items` into a side table

`quantity` is in btree indexes, so a stock change is never a HOT update: PostgreSQL writes a
new entry into every index of `products.items` for the new row version, including ~80 trigram
entries per product in products_0002's three GIN indexes, although name, barcode and
description did not change. One `apply_stock_movements` call changing 50,000 stocks cost
2.7-3.0 s of PostgreSQL CPU with those indexes and 1.7 s without them (plus more in the later
VACUUM); a 3-line sale's stock call 0.80 vs 0.68 ms (bench/results/csv.md).

`products.search_terms` holds one row per product: its folded name, barcode and description
joined by SEARCH_TERMS_SEPARATOR (`terms`, under one trigram GIN index), and its status, folded
name and folded barcode on their own: with those, a search sorted by name without a stock
filter (/api/products and /api/products_all by default, the autocomplete) never reads `items`
but for the page's rows. Probing `items` for every match instead cost 1-2 ms more per 1,000
matches than products_0002's indexes (repository._search). These are exactly the fields that
products_0008's search version tracks. Stock and price updates never touch the table.

It is kept in the writer's transaction by statement-level triggers with transition tables, so
bulk writes stay set-based:
- INSERT/COPY into `items`: one INSERT of the new rows' terms;
- UPDATE of `items`: the rows whose status or folded name, barcode or description changed
  are rewritten (PostgreSQL refuses transition tables on `UPDATE OF column` triggers, so
  the trigger fires on every UPDATE and compares old and new rows; a stock change writes
  nothing here);
- DELETE: one DELETE of the old rows' terms; TRUNCATE: TRUNCATE.
ENABLE ALWAYS keeps the triggers active under session_replication_role = replica (bulk loads,
restores), as products_0008/0009's.

No foreign key to `items`: only these triggers write the table, and a foreign key checks each
inserted row on its own (a query and a row lock on the product per row, written to the WAL):
for an import of 50,000 new products that cost 1.1 s of PostgreSQL CPU, a third of the INSERT
(bench/results/csv.md). tests/products/test_search_terms.py compares the table with the
products after every kind of write.

A term without the separator matches `terms LIKE '%term%'` exactly when some field contains
it: a match cannot span a separator. The search (repository._matches) checks the fields one by
one only for a term that contains the separator, and for name-or-barcode searches.

Revision ID: products_0010
Revises: products_0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence
from importlib import import_module
from typing import Any

from alembic import op

from services.products.tables import SEARCH_TERMS_SEPARATOR

revision: str = "products_0010"
down_revision: str | None = "products_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    "items_search_terms_insert",
    "items_search_terms_update",
    "items_search_terms_delete",
    "items_search_terms_truncate",
)


def _trgm_schema() -> str:
    """pg_trgm's schema (products_0002's lookup)."""
    folded: Any = import_module("services.products.migrations.versions.0002_folded_columns")
    return str(folded._trgm_schema())


def upgrade() -> None:
    trgm = _trgm_schema()
    separator = f"chr({ord(SEARCH_TERMS_SEPARATOR)})"
    op.execute(
        f"""
        CREATE FUNCTION products.search_terms_of(
            name_folded text, barcode_folded text, description_folded text
        ) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT coalesce(name_folded, '') || {separator}
                         || coalesce(barcode_folded, '') || {separator}
                         || coalesce(description_folded, '') $$;

        CREATE TABLE products.search_terms (
            item_id        bigint   PRIMARY KEY,  -- products.items (id); no foreign key (above)
            status         smallint NOT NULL,
            name_folded    text     NOT NULL,
            barcode_folded text,
            terms          text     NOT NULL
        );

        CREATE FUNCTION products.insert_search_terms() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO products.search_terms
                (item_id, status, name_folded, barcode_folded, terms)
            SELECT id, status, name_folded, barcode_folded,
                   products.search_terms_of(name_folded, barcode_folded, description_folded)
              FROM new_rows;
            RETURN NULL;
        END;
        $$;
        -- The rows whose status or folded fields changed. A set difference rather than a join
        -- of the two transition tables: linear whatever the plan (a generic plan cannot pick a
        -- nested loop over 50,000 x 50,000 rows), NULL barcodes compare equal, and ids are
        -- unique on each side, so ALL saves the de-duplication.
        CREATE FUNCTION products.update_search_terms() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE products.search_terms AS st
               SET status = c.status, name_folded = c.name_folded,
                   barcode_folded = c.barcode_folded,
                   terms = products.search_terms_of(
                       c.name_folded, c.barcode_folded, c.description_folded)
              FROM (SELECT id, status, name_folded, barcode_folded, description_folded
                      FROM new_rows
                    EXCEPT ALL
                    SELECT id, status, name_folded, barcode_folded, description_folded
                      FROM old_rows
                   ) AS c
             WHERE st.item_id = c.id;
            RETURN NULL;
        END;
        $$;

        CREATE FUNCTION products.delete_search_terms() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM products.search_terms AS st USING old_rows AS o WHERE st.item_id = o.id;
            RETURN NULL;
        END;
        $$;
        CREATE FUNCTION products.truncate_search_terms() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE products.search_terms;
            RETURN NULL;
        END;
        $$;

        CREATE TRIGGER items_search_terms_insert AFTER INSERT ON products.items
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.insert_search_terms();
        CREATE TRIGGER items_search_terms_update AFTER UPDATE ON products.items
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.update_search_terms();
        CREATE TRIGGER items_search_terms_delete AFTER DELETE ON products.items
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.delete_search_terms();
        CREATE TRIGGER items_search_terms_truncate AFTER TRUNCATE ON products.items
            FOR EACH STATEMENT EXECUTE FUNCTION products.truncate_search_terms();

        -- The existing products' terms, with writers held off until this migration commits;
        -- the index is built once over them.
        LOCK TABLE products.items IN SHARE MODE;
        INSERT INTO products.search_terms (item_id, status, name_folded, barcode_folded, terms)
        SELECT id, status, name_folded, barcode_folded,
               products.search_terms_of(name_folded, barcode_folded, description_folded)
          FROM products.items;
        CREATE INDEX ix_search_terms_trgm ON products.search_terms
            USING gin (terms {trgm}.gin_trgm_ops);

        DROP INDEX products.ix_items_name_trgm;
        DROP INDEX products.ix_items_barcode_trgm;
        DROP INDEX products.ix_items_description_trgm;
        """
    )
    for trigger in TRIGGERS:
        op.execute(f"ALTER TABLE products.items ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    trgm = _trgm_schema()
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON products.items")
    op.execute(
        f"""
        DROP TABLE products.search_terms;
        DROP FUNCTION products.insert_search_terms();
        DROP FUNCTION products.update_search_terms();
        DROP FUNCTION products.delete_search_terms();
        DROP FUNCTION products.truncate_search_terms();
        DROP FUNCTION products.search_terms_of(text, text, text);
        CREATE INDEX ix_items_name_trgm ON products.items
            USING gin (name_folded {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_barcode_trgm ON products.items
            USING gin (barcode_folded {trgm}.gin_trgm_ops);
        CREATE INDEX ix_items_description_trgm ON products.items
            USING gin (description_folded {trgm}.gin_trgm_ops);
        """
    )
