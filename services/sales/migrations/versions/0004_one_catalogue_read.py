"""sales schema: sales.record_sale reads the catalogue once before the stock function

Revision ID: sales_0004
Revises: sales_0003
Create Date: 2026-12-08

sales_0003's function looked the lines' products up twice before locking them: once for the
first unknown id, once more for the disabled ones. One outer join of the lines with
`products.catalog` answers both; the refusals and their order are unchanged (the first unknown
id in the order asked is SM404; otherwise every disabled product, named in the order asked, is
SA423). Measured on a scratch database, 3-line sales called in alternating chunks: about
0.06-0.12 ms less PostgreSQL CPU per sale (1.62 -> 1.50 ms median).
"""

from collections.abc import Sequence
from importlib import import_module

from alembic import op

revision: str = "sales_0004"
down_revision: str | None = "sales_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TWO_READS = """
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
"""

_ONE_READ = """
    SELECT (array_agg(l.id ORDER BY l.n) FILTER (WHERE c.id IS NULL))[1],
           jsonb_agg(c.name ORDER BY l.n) FILTER (WHERE c.status <> 1)
      INTO v_missing, v_names
      FROM (SELECT (x.e ->> 'item_id')::bigint AS id, x.n
              FROM jsonb_array_elements(v_lines) WITH ORDINALITY AS x(e, n)) AS l
      LEFT JOIN products.catalog AS c ON c.id = l.id;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SM404', MESSAGE = 'item_not_found',
            DETAIL = v_missing::text;
    END IF;
    IF v_names IS NOT NULL THEN
"""


def _previous() -> str:
    """sales_0003's function, as CREATE OR REPLACE."""
    text: str = import_module("services.sales.migrations.versions.0003_record_sale").RECORD_SALE
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    previous = _previous()
    if previous.count(_TWO_READS) != 1:
        raise RuntimeError("sales_0004: sales_0003's catalogue reads not found")
    op.execute(previous.replace(_TWO_READS, _ONE_READ))


def downgrade() -> None:
    op.execute(_previous())
