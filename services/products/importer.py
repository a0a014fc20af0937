"""CSV import: upsert by barcode, all or nothing unless invalid rows are skipped on request.

A row whose barcode exists updates that product (its name, price, stock, ... as given; empty
optional cells leave the stored value alone; the status is kept); any other row creates an
active product. Stock changes of existing products go through the stock function (reason
`import`); new products are inserted with their stock and get their first ledger row from
`products.record_initial_stock` (reason `import`, delta = the stock), so the ledger and the
low-stock crossing rules hold as for every other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.products import events, repository
from services.products.csvio import ImportRow, ParsedImport
from services.products.service import apply_stock, stock_low_event, stock_reference
from services.products.tables import outbox
from stockmanager.contracts.stock import StockReason, product_crossed_low
from stockmanager.errors import ValidationFailed
from stockmanager.events import Event, write_events
from stockmanager.identity import Identity

UPDATABLE = ("name", "description", "min_quantity", "price", "expiration_date")
IMPORT_REASON: StockReason = "import"
MAX_REPORTED_ERRORS = 1000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "message": "Importación completada",
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": self.errors[:MAX_REPORTED_ERRORS],
        }


def reject_invalid(parsed: ParsedImport) -> None:
    if parsed.errors:
        raise ValidationFailed(
            "El archivo contiene filas inválidas; no se importó nada",
            invalid_rows=len(parsed.errors),
            errors=parsed.errors[:MAX_REPORTED_ERRORS],
        )


async def import_rows(
    conn: AsyncConnection, caller: Identity, parsed: ParsedImport
) -> ImportResult:
    """Set-based: the rows go to a staging table in one COPY, new products are inserted with
    their stock in one statement (the ledger's first rows: `record_initial_stock`), changed
    fields are set in one statement and stock deltas of existing products take one call of the
    stock function. Row-by-row this took ~20 s for 50,000 rows (bench/results/csv.md)."""
    result = ImportResult(skipped=len(parsed.errors), errors=parsed.errors)
    await repository.stage_import(conn, (_staged(row) for row in parsed.rows))
    existing = await repository.lock_staged_products(conn)
    updates: list[tuple[Any, ...]] = []
    deltas: dict[int, int] = {}
    touched: list[tuple[Any, dict[str, Any]]] = []
    for row in parsed.rows if existing else ():
        values = row.values
        current = existing.get(values["barcode"])
        if current is None:
            continue  # new: inserted from the staging table below
        merged = {column: values.get(column, getattr(current, column)) for column in UPDATABLE}
        fields_changed = any(merged[column] != getattr(current, column) for column in UPDATABLE)
        delta = values["quantity"] - current.quantity
        if not fields_changed and delta == 0:
            result.unchanged += 1
            continue
        result.updated += 1
        if fields_changed:
            updates.append((current.id, *(merged[column] for column in UPDATABLE)))
        if delta:
            deltas[current.id] = delta
        touched.append((current, merged | {"quantity": values["quantity"]}))

    if len(existing) < len(parsed.rows):
        result.created = await repository.insert_staged_products(
            conn,
            reason=IMPORT_REASON,
            reference=stock_reference(caller),
            actor_id=caller.user_id,
            actor_username=caller.username,
        )
    if updates:
        await repository.update_products_from(conn, UPDATABLE, updates)
    await apply_stock(conn, caller, deltas, reason=IMPORT_REASON)

    pending: list[Event] = []
    if result.created or result.updated or result.skipped:  # a no-op file is not an event
        pending.append(
            events.imported(
                caller, created=result.created, updated=result.updated, skipped=result.skipped
            )
        )
    for before, after_values in sorted(touched, key=lambda pair: pair[0].id):
        after = _Row(before, after_values)
        if product_crossed_low(before, after):
            pending.append(stock_low_event(caller, after))
    await write_events(conn, outbox, pending)
    return result


def _staged(row: ImportRow) -> tuple[Any, ...]:
    values = row.values
    return (
        row.line,
        values["barcode"],
        values["name"],
        values.get("description"),
        values["quantity"],
        values.get("min_quantity"),
        values["price"],
        values.get("expiration_date"),
    )


class _Row:
    """A product row with some values replaced (the state after the import)."""

    def __init__(self, row: Any, values: dict[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)
