"""products: how many products each list without a search holds, kept exact by the writers

Every page of `products_all` / `products` carries its list's `total`. Counted at read time that
is a scan of the list's rows on every page: all products (an index-only scan of 50,000 entries,
2 ms), in stock (35,000, 1.6 ms even index-only on products_0007's partial index), low stock
(10,000, 0.5 ms); most of what an in-stock page cost PostgreSQL (bench/results/products.md).

Every list without a search is a union of buckets (status x stock class: out of stock
`quantity = 0`, low `0 < quantity <= min_quantity`, in stock `quantity > min_quantity`), so
the writers keep per-bucket counts instead: statement-level triggers with transition tables
append one signed row per bucket a statement changes (an INSERT/COPY, an UPDATE that moves
rows between buckets, a DELETE), in the writer's transaction. A reader sums its buckets' rows
in its own snapshot, which is exactly the count of that snapshot's products. Append-only, so
writers never wait on each other for it (a sale that moves no product between buckets appends
nothing); readers fold the rows back into one per bucket now and then
(repository.compact_list_counts). ENABLE ALWAYS keeps the triggers active under
session_replication_role = replica.

Revision ID: products_0009
Revises: products_0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0009"
down_revision: str | None = "products_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    "items_list_counts_insert",
    "items_list_counts_update",
    "items_list_counts_delete",
    "items_list_counts_truncate",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE products.list_counts (
            status      smallint NOT NULL,
            stock_class smallint NOT NULL,  -- products.stock_class
            n           bigint   NOT NULL   -- signed: products added to (removed from) it
        );

        -- 0: out of stock (quantity = 0), 1: low (0 < quantity <= min_quantity), 2: in stock
        -- (quantity > min_quantity): the view modes' filters (repository._where), disjoint.
        CREATE FUNCTION products.stock_class(quantity integer, min_quantity integer)
            RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT (CASE WHEN quantity = 0 THEN 0 WHEN quantity <= min_quantity THEN 1
                               ELSE 2 END)::smallint $$;

        CREATE FUNCTION products.count_inserted_items() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO products.list_counts (status, stock_class, n)
            SELECT status, products.stock_class(quantity, min_quantity), count(*)
              FROM new_rows GROUP BY 1, 2;
            RETURN NULL;
        END;
        $$;
        CREATE FUNCTION products.count_deleted_items() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO products.list_counts (status, stock_class, n)
            SELECT status, products.stock_class(quantity, min_quantity), -count(*)
              FROM old_rows GROUP BY 1, 2;
            RETURN NULL;
        END;
        $$;
        -- Only the buckets whose count changed get a row: a sale that leaves its products in
        -- their buckets appends nothing.
        CREATE FUNCTION products.count_updated_items() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO products.list_counts (status, stock_class, n)
            SELECT d.status, d.stock_class, sum(d.n)
              FROM (SELECT status, products.stock_class(quantity, min_quantity) AS stock_class,
                           1 AS n
                      FROM new_rows
                    UNION ALL
                    SELECT status, products.stock_class(quantity, min_quantity), -1
                      FROM old_rows) AS d
             GROUP BY 1, 2
            HAVING sum(d.n) <> 0;
            RETURN NULL;
        END;
        $$;
        CREATE FUNCTION products.count_truncated_items() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM products.list_counts;
            RETURN NULL;
        END;
        $$;

        CREATE TRIGGER items_list_counts_insert AFTER INSERT ON products.items
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.count_inserted_items();
        CREATE TRIGGER items_list_counts_update AFTER UPDATE ON products.items
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.count_updated_items();
        CREATE TRIGGER items_list_counts_delete AFTER DELETE ON products.items
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION products.count_deleted_items();
        CREATE TRIGGER items_list_counts_truncate AFTER TRUNCATE ON products.items
            FOR EACH STATEMENT EXECUTE FUNCTION products.count_truncated_items();

        -- The starting counts, with writers held off until this migration commits.
        LOCK TABLE products.items IN SHARE MODE;
        INSERT INTO products.list_counts (status, stock_class, n)
        SELECT status, products.stock_class(quantity, min_quantity), count(*)
          FROM products.items GROUP BY 1, 2;
        """
    )
    for trigger in TRIGGERS:
        op.execute(f"ALTER TABLE products.items ENABLE ALWAYS TRIGGER {trigger}")


def downgrade() -> None:
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON products.items")
    op.execute(
        """
        DROP FUNCTION products.count_inserted_items();
        DROP FUNCTION products.count_deleted_items();
        DROP FUNCTION products.count_updated_items();
        DROP FUNCTION products.count_truncated_items();
        DROP TABLE products.list_counts;
        DROP FUNCTION products.stock_class(integer, integer);
        """
    )
