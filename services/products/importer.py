"""CSV import: upsert by barcode, all or nothing unless invalid rows are skipped on request.

A row whose barcode exists updates that product (its name, price, stock, ... as given; empty
optional cells leave the stored value alone; the status is kept); any other row creates an
active product. Stock set by the file goes through the stock function (reason `import`), so the
ledger and the low-stock crossing rules hold as for every other change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.products import events, repository
from services.products.csvio import ParsedImport
from services.products.service import apply_stock, stock_low_event
from services.products.tables import outbox
from services.products.validation import DEFAULT_MIN_QUANTITY
from stockmanager.contracts.stock import product_crossed_low
from stockmanager.errors import ValidationFailed
from stockmanager.events import Event, write_events
from stockmanager.identity import Identity

UPDATABLE = ("name", "description", "min_quantity", "price", "expiration_date")
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
    result = ImportResult(skipped=len(parsed.errors), errors=parsed.errors)
    existing = await repository.lock_products_by_barcode(
        conn, [row.values["barcode"] for row in parsed.rows]
    )
    new_rows: list[dict[str, Any]] = []
    new_stock: dict[str, int] = {}
    updates: list[dict[str, Any]] = []
    deltas: dict[int, int] = {}
    touched: list[tuple[Any, dict[str, Any]]] = []
    for row in parsed.rows:
        values = row.values
        current = existing.get(values["barcode"])
        if current is None:
            new_rows.append(
                {
                    "barcode": values["barcode"],
                    "name": values["name"],
                    "description": values.get("description", ""),
                    "quantity": 0,
                    "min_quantity": values.get("min_quantity", DEFAULT_MIN_QUANTITY),
                    "price": values["price"],
                    "expiration_date": values.get("expiration_date"),
                    "status": 1,
                }
            )
            new_stock[values["barcode"]] = values["quantity"]
            continue
        merged = {column: values.get(column, getattr(current, column)) for column in UPDATABLE}
        fields_changed = any(merged[column] != getattr(current, column) for column in UPDATABLE)
        delta = values["quantity"] - current.quantity
        if not fields_changed and delta == 0:
            result.unchanged += 1
            continue
        result.updated += 1
        if fields_changed:
            updates.append({"b_id": current.id, **{f"b_{k}": v for k, v in merged.items()}})
        if delta:
            deltas[current.id] = delta
        touched.append((current, merged | {"quantity": values["quantity"]}))

    created_ids = await repository.insert_products(conn, new_rows)
    result.created = len(created_ids)
    await repository.update_products(conn, UPDATABLE, updates)
    for barcode, product_id in created_ids.items():
        deltas[product_id] = new_stock[barcode]
    await apply_stock(conn, caller, deltas, reason="import")

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


class _Row:
    """A product row with some values replaced (the state after the import)."""

    def __init__(self, row: Any, values: dict[str, Any]) -> None:
        self._row = row
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._row, name)
