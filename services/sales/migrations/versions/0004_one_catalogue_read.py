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

# sales_0003's two reads: from the first line below to the end of the second's IF line.
_TWO_READS_START = "    SELECT (l.e ->> 'item_id')::bigint INTO v_missing\n"
_TWO_READS_END = "    IF v_names IS NOT NULL THEN\n"

_ONE_READ = """    SELECT (array_agg(l.id ORDER BY l.n) FILTER (WHERE c.id IS NULL))[1],
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
    if previous.count(_TWO_READS_START) != 1:
        raise RuntimeError("sales_0004: sales_0003's catalogue reads not found")
    start = previous.index(_TWO_READS_START)
    end = previous.index(_TWO_READS_END, start) + len(_TWO_READS_END)
    op.execute(previous[:start] + _ONE_READ + previous[end:])


def downgrade() -> None:
    op.execute(_previous())
