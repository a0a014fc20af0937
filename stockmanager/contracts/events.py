"""Typed event payloads: the `data`, `before` and `after` of every event type, defined once.

Producers build these models and `new_event` serialises them with `Payload.wire()`; consumers
read the parts they use with `Event.data_as(Model)` / `before_as` / `after_as`. `CONTRACTS` maps
each `EventType` to its models (docs/events.md is the prose version of this module).

Rules of the wire format:
- A payload is its models' JSON (`model_dump(mode="json")`): money is a JSON number (float),
  dates are ISO strings, tuples are arrays.
- A field with a default is an optional key: written only when the producer sets it
  (`exclude_unset`), so a model parsed from the wire and dumped again gives back the same keys.
- Readers ignore keys they do not know (a newer producer may add some).

A payload that does not validate raises `pydantic.ValidationError` (a `ValueError`) where it is
read; each consumer decides what that means (docs/events.md, "Invalid payloads").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue

from stockmanager.events.envelope import Event, EventType


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON object this payload is on the stream."""
        return self.model_dump(mode="json", exclude_unset=True)


class NoData(Payload):
    """`data` of the types that carry none (`{}`)."""


# --- products ---------------------------------------------------------------------------------


class ProductSnapshot(Payload):
    """A product as `before`/`after` (and `product.created`'s `data.product`) carry it."""

    id: int
    barcode: str | None
    name: str
    description: str | None
    price: float
    quantity: int
    min_quantity: int
    status: int
    expiration_date: str | None  # YYYY-MM-DD


class ProductCreated(Payload):
    product: ProductSnapshot


class ProductUpdated(Payload):
    changed: tuple[str, ...]  # snapshot keys whose value changed


class ProductStatusChanged(Payload):
    """`product.disabled` and `product.activated`."""

    name: str


class BulkPriceRow(Payload):
    id: int
    name: str
    old_price: float
    new_price: float


class PricesBulkUpdated(Payload):
    products: tuple[BulkPriceRow, ...]


class BulkStockRow(Payload):
    id: int
    name: str
    old_stock: int
    new_stock: int


class StockBulkUpdated(Payload):
    products: tuple[BulkStockRow, ...]


class ProductsImported(Payload):
    created: int
    updated: int
    skipped: int


class StockLow(Payload):
    """An active product's stock crossed into `quantity <= min_quantity` (products or sales)."""

    item_id: int
    name: str
    quantity: int
    min_quantity: int
    notify_user_id: int | None  # the acting user; the notifications consumer adds the admins


# --- sales ------------------------------------------------------------------------------------


class SaleItem(Payload):
    """What every reader of a sale line may rely on: which product, how many."""

    item_id: int
    name: str
    quantity: int


class SaleLine(SaleItem):
    """A sale line as producers write it."""

    unit_price: float
    subtotal: float


class SaleSummary(Payload):
    """The part of `sale.created` the notifications consumer relies on (who sold what); the
    producer always writes the whole `SaleCreated`."""

    sale_id: int
    vendor_id: int
    items: tuple[SaleItem, ...]


class SaleCreated(SaleSummary):
    """`sale.created`'s `data`, and its `after`."""

    vendor_username: str
    payment_method: str
    total: float
    items: tuple[SaleLine, ...]


class SaleUpdated(Payload):
    sale_id: int


class SaleState(Payload):
    """`sale.updated`'s `before` and `after`."""

    vendor_id: int
    payment_method: str
    total: float
    items: tuple[SaleLine, ...]


# --- users, applications, settings ------------------------------------------------------------


class UserSnapshot(Payload):
    id: int
    username: str
    email: str
    role: str
    status: int
    application: str


class UserUpdated(Payload):
    changed: tuple[str, ...]
    password_changed: bool
    by_admin: bool  # False: the user changed their own profile


class PasswordResetRequested(Payload):
    email_known: bool  # never the code


class ApplicationState(Payload):
    """`application.approved` / `application.rejected`: `before` and `after`."""

    status: int
    application: str


class SettingsUpdated(Payload):
    key: str


class SettingValue(Payload):
    """`settings.updated`'s `before` and `after`."""

    value: JsonValue


# --- gateway ----------------------------------------------------------------------------------


class LoginFailed(Payload):
    username: str  # unverified input, as typed
    reason: str | None  # the users service's error code, or `rate_limited`


class RequestRefused(Payload):
    method: str
    path: str
    http_status: int
    service: str


class DebugCommand(Payload):
    command: str | None  # None: the body named no command at all
    refused: bool = False  # written only when the command was refused


# --- notifications ----------------------------------------------------------------------------


class NotificationChanged(Payload):
    """`data` of `notification.created` and `notification.deleted`."""

    user_id: int
    title: str
    type: str


class NotificationSnapshot(Payload):
    """`notification.created`'s `after`."""

    id: int
    user_id: int
    title: str
    message: str
    type: str
    action_url: str | None


class DeletedNotification(NotificationSnapshot):
    """`notification.deleted`'s `before`."""

    is_read: bool


# --- webhooks ---------------------------------------------------------------------------------


class WebhookSnapshot(Payload):
    """A webhook subscription as `before`/`after` carry it (never its secret)."""

    id: int
    url: str
    events: tuple[str, ...]  # event types, or ("*",) for all
    description: str
    active: bool


class WebhookUpdated(Payload):
    changed: tuple[str, ...]  # snapshot keys whose value changed


class WebhookSecretRotated(Payload):
    previous_valid_until: str | None  # ISO 8601 UTC; None: the old secret ended at once


class WebhookDisabled(Payload):
    """`webhook.disabled`: the subscription kept failing and was disabled automatically."""

    subscription_id: int
    url: str
    consecutive_failures: int
    last_error: str | None


# --- import-upstream --------------------------------------------------------------------------


class ImportCounts(Payload):
    """Rows of one kind: in the file, new here, merged into local rows, imported by an earlier
    run, not imported (a data-problem rule said so)."""

    read: int
    imported: int
    matched: int
    already: int
    skipped: int


class UpstreamImported(Payload):
    """`stockmanager import-upstream` brought an upstream StockManager database over."""

    source: str  # the upstream shop (stable across copies of its database)
    fingerprint: str  # sha256 of the imported file
    generation: str  # upstream schema generation
    counts: dict[str, ImportCounts]  # by kind: users, products, sales, sale_lines, ...
    problems: dict[str, int]  # data problems by rule (docs/upgrading-from-stockmanager.md)
    ids_not_kept: int


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventContract:
    """The models of one event type (None: the envelope field is null for this type)."""

    data: type[Payload]
    before: type[Payload] | None = None
    after: type[Payload] | None = None


CONTRACTS: dict[EventType, EventContract] = {
    # gateway
    EventType.LOGIN_SUCCEEDED: EventContract(NoData),
    EventType.LOGIN_FAILED: EventContract(LoginFailed),
    EventType.LOGOUT: EventContract(NoData),
    EventType.REQUEST_REFUSED: EventContract(RequestRefused),
    EventType.DEBUG_COMMAND_RUN: EventContract(DebugCommand),
    # products
    EventType.PRODUCT_CREATED: EventContract(ProductCreated, after=ProductSnapshot),
    EventType.PRODUCT_UPDATED: EventContract(ProductUpdated, ProductSnapshot, ProductSnapshot),
    EventType.PRODUCT_DISABLED: EventContract(
        ProductStatusChanged, ProductSnapshot, ProductSnapshot
    ),
    EventType.PRODUCT_ACTIVATED: EventContract(
        ProductStatusChanged, ProductSnapshot, ProductSnapshot
    ),
    EventType.PRODUCT_PRICES_BULK_UPDATED: EventContract(PricesBulkUpdated),
    EventType.PRODUCT_STOCK_BULK_UPDATED: EventContract(StockBulkUpdated),
    EventType.PRODUCTS_IMPORTED: EventContract(ProductsImported),
    EventType.STOCK_LOW: EventContract(StockLow),
    # sales
    EventType.SALE_CREATED: EventContract(SaleCreated, after=SaleCreated),
    EventType.SALE_UPDATED: EventContract(SaleUpdated, SaleState, SaleState),
    # users
    EventType.USER_CREATED: EventContract(NoData, after=UserSnapshot),
    EventType.USER_UPDATED: EventContract(UserUpdated, UserSnapshot, UserSnapshot),
    EventType.USER_DISABLED: EventContract(NoData, UserSnapshot, UserSnapshot),
    EventType.USER_REGISTERED: EventContract(NoData, after=UserSnapshot),
    EventType.USER_PASSWORD_CHANGED: EventContract(NoData),
    EventType.USER_PASSWORD_RESET_REQUESTED: EventContract(PasswordResetRequested),
    EventType.USER_PASSWORD_RESET: EventContract(NoData),
    EventType.APPLICATION_APPROVED: EventContract(NoData, ApplicationState, ApplicationState),
    EventType.APPLICATION_REJECTED: EventContract(NoData, ApplicationState, ApplicationState),
    EventType.SETTINGS_UPDATED: EventContract(SettingsUpdated, SettingValue, SettingValue),
    # notifications
    EventType.NOTIFICATION_CREATED: EventContract(NotificationChanged, after=NotificationSnapshot),
    EventType.NOTIFICATION_DELETED: EventContract(NotificationChanged, before=DeletedNotification),
    # webhooks
    EventType.WEBHOOK_CREATED: EventContract(NoData, after=WebhookSnapshot),
    EventType.WEBHOOK_UPDATED: EventContract(WebhookUpdated, WebhookSnapshot, WebhookSnapshot),
    EventType.WEBHOOK_DELETED: EventContract(NoData, before=WebhookSnapshot),
    EventType.WEBHOOK_SECRET_ROTATED: EventContract(WebhookSecretRotated),
    EventType.WEBHOOK_DISABLED: EventContract(WebhookDisabled, WebhookSnapshot, WebhookSnapshot),
    # import-upstream
    EventType.UPSTREAM_IMPORTED: EventContract(UpstreamImported),
}


@dataclass(frozen=True, slots=True)
class TypedPayload:
    data: Payload
    before: Payload | None
    after: Payload | None


def contract_for(event_type: str) -> EventContract | None:
    """The contract of a type, or None for a type this version does not know."""
    try:
        return CONTRACTS[EventType(event_type)]
    except ValueError:
        return None


def payload_for(event: Event) -> TypedPayload | None:
    """Every part of `event` validated against its type's contract (None: unknown type).

    Raises `pydantic.ValidationError` when a part does not match.
    """
    contract = contract_for(event.type)
    if contract is None:
        return None
    return TypedPayload(
        data=contract.data.model_validate(event.data),
        before=_part(contract.before, event.before),
        after=_part(contract.after, event.after),
    )


def _part(model: type[Payload] | None, raw: dict[str, Any] | None) -> Payload | None:
    if model is None:
        if raw is not None:
            raise ValueError("this event type carries no snapshot here")
        return None
    return model.model_validate(raw)
