"""The service's own value types (what requests ask for and what a sale is)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from stockmanager.contracts.fields import money


@dataclass(frozen=True, slots=True)
class RequestedLine:
    """One product of a request, duplicates already summed (in first-seen order)."""

    item_id: int
    quantity: int


@dataclass(frozen=True, slots=True)
class SaleOrder:
    lines: tuple[RequestedLine, ...]
    payment_method: str


@dataclass(frozen=True, slots=True)
class BarcodeOrder:
    barcode: str
    quantity: int
    payment_method: str


@dataclass(frozen=True, slots=True)
class SaleEdit:
    lines: tuple[RequestedLine, ...]
    vendor_id: int | None  # None: keep the current seller
    payment_method: str | None  # None: keep the current method


@dataclass(frozen=True, slots=True)
class SaleLine:
    item_id: int
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def subtotal(self) -> Decimal:
        return money(self.unit_price * self.quantity)


@dataclass(frozen=True, slots=True)
class Sale:
    id: int
    sold_at: datetime
    vendor_id: int
    vendor_username: str
    payment_method: str
    lines: tuple[SaleLine, ...]

    @property
    def total(self) -> Decimal:
        return money(sum((line.subtotal for line in self.lines), Decimal(0)))

    @property
    def total_quantity(self) -> int:
        return sum(line.quantity for line in self.lines)


@dataclass(frozen=True, slots=True)
class SaleFilters:
    start: datetime | None = None  # inclusive, UTC
    end: datetime | None = None  # exclusive, UTC
    product: str | None = None
    vendedor: str | None = None
    only_vendor_id: int | None = None  # a vendedor sees only their own sales
