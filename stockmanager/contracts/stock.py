"""The products stock function as every caller uses it: `products.apply_stock_movements`.

The products schema defines and owns the function (services/products/migrations/versions/
0001_products.py): in the caller's transaction it locks the items in id order, applies the
deltas with a guard against negative stock, writes the ledger rows and returns one row per item.
This module is its one client, for both database drivers in use:

- `StockMovements` is the typed request and `apply_stock_movements(conn, request)` runs it on a
  SQLAlchemy `AsyncConnection` or on a raw psycopg connection (the sales checkout pool), giving
  a `StockChange` per item.
- A caller that folds the call into a statement of its own (the sales checkout records a whole
  sale in one statement) uses the same pieces the call is built from: `call_sql()`,
  `call_params()`, `COLUMNS` and `changes_from()`.
- Refusals form one exception family, `StockRefused`. They are API errors (400, upstream's
  messages and bodies), so the one mapping to the wire is here too: the function's SQLSTATEs
  (SM404 unknown item, SM409 insufficient stock) through `refusal()`, inactive products through
  `require_active()` / `require_known_active()`.
- The low-stock rule of decisions §3 (`is_low`, `crossed_low`; `low_stock_sql` and
  `low_in_stock_sql` for readers of the catalogue in SQL). The function's own `crossed_low`
  column restates the crossing in SQL (tests/kernel/test_contracts_stock.py binds the two).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Final, Literal, Protocol, get_args

import orjson
import psycopg
from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.errors import ValidationFailed
from stockmanager.http import dumps

PRODUCT_ACTIVE: Final = 1
"""`products.items.status` of a product that can be sold (0: disabled)."""

StockReason = Literal["sale", "sale_edit", "product_update", "bulk_stock", "import", "initial"]
REASONS: Final[tuple[StockReason, ...]] = get_args(StockReason)
"""The ledger reasons the function accepts (its CHECK constraint lists the same)."""

REFERENCE_MAX: Final = 100
"""Length of the ledger's `reference` column; longer references are cut."""

ParamStyle = Literal["psycopg", "sqlalchemy"]

# ------------------------------------------------------------------------------ low stock


def is_low(quantity: int, min_quantity: int) -> bool:
    """decisions §3: at or below the minimum is low (at 0 it is also out of stock)."""
    return quantity <= min_quantity


def low_stock_sql(alias: str = "") -> str:
    """`is_low` as a SQL condition on `products.catalog` (or `products.items`) columns."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}quantity <= {prefix}min_quantity"


def low_in_stock_sql(alias: str = "") -> str:
    """Low but not out of stock (`0 < quantity <= min_quantity`), as a SQL condition."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}quantity > 0 AND {low_stock_sql(alias)}"


def crossed_low(
    *, active: bool, quantity_before: int, min_before: int, quantity_after: int, min_after: int
) -> bool:
    """An active product moved from above its minimum to at or below it: notify once.

    It fires again only after the stock has gone back above the minimum. The minimum may change
    in the same transaction (a product PUT), hence one before and one after.
    """
    return active and not is_low(quantity_before, min_before) and is_low(quantity_after, min_after)


class ProductLevel(Protocol):
    """What the low-stock rule reads of a product row (any row with these attributes)."""

    @property
    def quantity(self) -> int: ...
    @property
    def min_quantity(self) -> int: ...
    @property
    def status(self) -> int: ...


def product_crossed_low(before: ProductLevel, after: ProductLevel) -> bool:
    """`crossed_low` between two states of one product row."""
    return crossed_low(
        active=after.status == PRODUCT_ACTIVE,
        quantity_before=before.quantity,
        min_before=before.min_quantity,
        quantity_after=after.quantity,
        min_after=after.min_quantity,
    )


# ----------------------------------------------------------------------- request and rows


@dataclass(frozen=True, slots=True)
class StockMovements:
    """One call: signed deltas by item id, the ledger reason, reference and actor."""

    deltas: Mapping[int, int]
    reason: StockReason
    reference: str | None
    actor_id: int | None
    actor_username: str | None


@dataclass(frozen=True, slots=True)
class StockChange:
    """One row of the function, read under the item's row lock (so name and price are what
    the change was made at). Field order is `COLUMNS`."""

    item_id: int
    name: str
    price: Decimal
    quantity_before: int
    quantity_after: int
    min_quantity: int
    status: int

    @property
    def active(self) -> bool:
        return self.status == PRODUCT_ACTIVE

    @property
    def crossed_low(self) -> bool:
        return crossed_low(
            active=self.active,
            quantity_before=self.quantity_before,
            min_before=self.min_quantity,
            quantity_after=self.quantity_after,
            min_after=self.min_quantity,
        )


COLUMNS: Final = "item_id, name, price, quantity_before, quantity_after, min_quantity, status"
"""The result columns the client reads, in `StockChange` field order."""

_PARAMS = ("stock_movements", "stock_reason", "stock_reference", "stock_actor_id", "stock_actor")


@cache
def call_sql(style: ParamStyle) -> str:
    """`products.apply_stock_movements(...)` with the parameters of `call_params()`.

    The parameter names are prefixed (`stock_*`) so the call can sit in a caller's statement
    next to parameters of its own.
    """
    mark = "%({})s" if style == "psycopg" else ":{}"
    movements, reason, reference, actor_id, actor = (mark.format(name) for name in _PARAMS)
    return (
        f"products.apply_stock_movements(CAST({movements} AS jsonb), {reason}, {reference},"
        f" {actor_id}, {actor})"
    )


def call_params(request: StockMovements) -> dict[str, Any]:
    movements = [{"item_id": item_id, "delta": delta} for item_id, delta in request.deltas.items()]
    reference = request.reference
    return {
        "stock_movements": dumps(movements).decode(),
        "stock_reason": request.reason,
        "stock_reference": reference[:REFERENCE_MAX] if reference is not None else None,
        "stock_actor_id": request.actor_id,
        "stock_actor": request.actor_username,
    }


def changes_from(rows: Iterable[Sequence[Any]]) -> dict[int, StockChange]:
    """Rows selected as `COLUMNS` (either driver), by item id."""
    return {row[0]: StockChange(*row) for row in rows}


_SELECT = f"SELECT {COLUMNS} FROM "
_PSYCOPG_CALL: Final = _SELECT + call_sql("psycopg")
_SQLALCHEMY_CALL: Final[TextClause] = text(_SELECT + call_sql("sqlalchemy"))


async def apply_stock_movements(
    conn: AsyncConnection | psycopg.AsyncConnection[Any], request: StockMovements
) -> dict[int, StockChange]:
    """Run the function in the caller's transaction; raises a `StockRefused` on refusal.

    After a refusal the transaction is aborted: let it roll back. Nothing to move, no call.
    """
    if not request.deltas:
        return {}
    params = call_params(request)
    try:
        if isinstance(conn, AsyncConnection):
            rows: Sequence[Sequence[Any]] = (await conn.execute(_SQLALCHEMY_CALL, params)).all()
        else:
            rows = await (await conn.execute(_PSYCOPG_CALL, params)).fetchall()
    except (DBAPIError, psycopg.Error) as exc:
        refused = refusal(exc)
        if refused is None:
            raise
        raise refused from exc
    return changes_from(rows)


# ------------------------------------------------------------------------------- refusals


class StockRefused(ValidationFailed):
    """A refusal of a stock change, as the API answers it (400)."""


class UnknownProduct(StockRefused):
    """No product with this id (the function's SM404; or absent from the catalogue)."""

    def __init__(self, item_id: int) -> None:
        super().__init__(f"Producto con ID {item_id} no encontrado")
        self.item_id = item_id


class InsufficientStock(StockRefused):
    """Upstream's stock error: `{"error","code","product","requested","available"}` (SM409)."""

    code = "insufficient_stock"
    default_message = "Stock insuficiente"

    def __init__(self, item_id: int, name: str, requested: int, available: int) -> None:
        super().__init__(product=name, requested=requested, available=available)
        self.item_id = item_id
        self.name = name
        self.requested = requested
        self.available = available

    def as_seen_by(
        self, requested: Mapping[int, int], held: Mapping[int, int] | None = None
    ) -> InsufficientStock:
        """The same refusal in the caller's terms: the quantity its request named, and the
        units it already holds (an edited sale's own lines) counted as available."""
        return InsufficientStock(
            self.item_id,
            self.name,
            requested.get(self.item_id, self.requested),
            self.available + (held or {}).get(self.item_id, 0),
        )


class ProductsUnavailable(StockRefused):
    """Disabled products, all named at once (in the order asked)."""

    code = "product_unavailable"

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        super().__init__("Los siguientes productos no están disponibles: " + ", ".join(self.names))


def refusal(exc: BaseException) -> StockRefused | None:
    """The function's refusal carried by a database error of either driver, else None."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    if state == "SM404":
        return UnknownProduct(int(_detail(orig)))
    if state == "SM409":
        data = orjson.loads(_detail(orig))
        return InsufficientStock(
            int(data["item_id"]), str(data["name"]), int(data["requested"]), int(data["available"])
        )
    return None


def _detail(error: Any) -> str:
    return str(getattr(getattr(error, "diag", None), "message_detail", None) or "")


class ProductState(Protocol):
    """What the availability checks read of a catalogue row or a `StockChange`."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> int: ...


def require_active(item_ids: Iterable[int], rows: Mapping[int, ProductState]) -> None:
    """Refuse if any of `item_ids` found in `rows` is disabled (ids not in `rows` are skipped)."""
    disabled = [
        rows[item_id].name
        for item_id in item_ids
        if item_id in rows and rows[item_id].status != PRODUCT_ACTIVE
    ]
    if disabled:
        raise ProductsUnavailable(disabled)


def require_known_active(item_ids: Sequence[int], rows: Mapping[int, ProductState]) -> None:
    """Unknown ids first (the first in the order given), then every disabled product at once."""
    for item_id in item_ids:
        if item_id not in rows:
            raise UnknownProduct(item_id)
    require_active(item_ids, rows)
