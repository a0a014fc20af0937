"""products: a version of what searches by name can see, bumped by every change to it

The products service keeps the answers of recent searches sorted by name (the page's ids and
the total; services/products/search_cache.py) and reuses one only while this version is the
one it was computed at, read in the same statement as the page's rows. Which products match
a term and their order by name depend only on the rows present and their name, barcode,
description and status; stock and price changes (every sale) leave the version alone, and
the page's rows are always read fresh.

The bump is transactional (one row, updated by a statement-level trigger in the writer's
transaction), so a reader sees a new version exactly when it sees the change: a cached answer
is never reused past a change it could see. Bumping more often than needed only costs a
recomputation. Each bump draws a new random value instead of counting up, so a version never
comes back (a database restored or migrated again under a running service would otherwise
meet versions it had already cached answers for); only equality is ever compared. ENABLE
ALWAYS keeps the triggers active under session_replication_role = replica (bulk loads,
restores). Writers of those columns queue on the version row until they commit: product edits
and imports, not sales.

Revision ID: products_0008
Revises: products_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "products_0008"
down_revision: str | None = "products_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE products.search_version (
            singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT ck_search_version_one
                CHECK (singleton),
            version   bigint  NOT NULL
        );
        -- A random 52-bit value per bump (random() has 52 bits): never the same twice in
        -- practice, and nothing orders versions.
        CREATE FUNCTION products.new_search_version() RETURNS bigint
            LANGUAGE sql VOLATILE
            AS $$ SELECT (random() * 4503599627370496)::bigint $$;
        INSERT INTO products.search_version (version) VALUES (products.new_search_version());

        CREATE FUNCTION products.bump_search_version() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE products.search_version SET version = products.new_search_version();
            RETURN NULL;
        END;
        $$;
        -- Statement-level: once per INSERT/COPY/UPDATE/DELETE statement, whatever its size
        -- (also when it touches no row). UPDATE OF fires when a SET names one of the columns.
        CREATE TRIGGER items_search_version
            AFTER INSERT OR DELETE OR UPDATE OF name, barcode, description, status
            ON products.items
            FOR EACH STATEMENT EXECUTE FUNCTION products.bump_search_version();
        CREATE TRIGGER items_search_version_truncate
            AFTER TRUNCATE ON products.items
            FOR EACH STATEMENT EXECUTE FUNCTION products.bump_search_version();
        ALTER TABLE products.items ENABLE ALWAYS TRIGGER items_search_version;
        ALTER TABLE products.items ENABLE ALWAYS TRIGGER items_search_version_truncate;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER items_search_version ON products.items;
        DROP TRIGGER items_search_version_truncate ON products.items;
        DROP FUNCTION products.bump_search_version();
        DROP TABLE products.search_version;
        DROP FUNCTION products.new_search_version();
        """
    )
