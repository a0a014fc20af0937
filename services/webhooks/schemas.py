"""Wire shapes of the webhooks service: request bodies (validated by the kernel's contract layer)
and the response models of every endpoint (the handlers answer with `json_response` bodies built
by the functions at the end, which these models document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.webhooks.events import ALL_EVENTS, DELIVERABLE
from services.webhooks.tables import DELIVERY_STATUSES
from stockmanager.contracts.fields import Rule, check_storable, integer_rule, invalid, text_rule
from stockmanager.contracts.validation import RequestBody

MESSAGE_DELETED = "Webhook eliminado"
MESSAGE_QUEUED = "Entrega programada"

DESCRIPTION_MAX = 500
GRACE_MAX_SECONDS = 7 * 24 * 3600

INVALID_URL = "url debe ser texto"
INVALID_EVENTS = 'events debe ser una lista no vacía de tipos de evento (o ["*"] para todos)'
INVALID_DESCRIPTION = f"description debe ser texto de hasta {DESCRIPTION_MAX} caracteres"
INVALID_ACTIVE = "active debe ser true o false"
INVALID_GRACE = f"grace_seconds debe ser un entero entre 0 y {GRACE_MAX_SECONDS}"


def _url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(INVALID_URL)
    # The form and the address rules are checked by the service (targets.py), which resolves.
    return check_storable(value.strip())


def _events(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise invalid(INVALID_EVENTS)
    unique = tuple(dict.fromkeys(value))
    if ALL_EVENTS in unique:
        if len(unique) > 1:
            raise invalid('"*" ya incluye todos los eventos: no se combina con otros')
        return unique
    unknown = [v for v in unique if v not in DELIVERABLE]
    if unknown:
        raise invalid(f"Tipo de evento desconocido: {check_storable(unknown[0])[:64]}")
    return unique


def _active(value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid(INVALID_ACTIVE)
    return value


EVENTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "enum": [ALL_EVENTS, *DELIVERABLE]},
}
URL_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 2000}
_DESCRIPTION = text_rule(INVALID_DESCRIPTION, max_length=DESCRIPTION_MAX)
UrlField = Annotated[str, Rule(_url, URL_SCHEMA)]
EventsField = Annotated[tuple[str, ...], Rule(_events, EVENTS_SCHEMA)]
DescriptionField = Annotated[str, _DESCRIPTION]
ActiveField = Annotated[bool, Rule(_active, {"type": "boolean"})]


def _optional(rule: Rule) -> Rule:
    """The rule for a field that may also be absent or null (null: leave it as it is)."""
    return Rule(
        lambda value: None if value is None else rule.check(value),
        {"anyOf": [dict(rule.json_schema), {"type": "null"}]},
    )


MaybeUrl = Annotated[str | None, _optional(Rule(_url, URL_SCHEMA))]
MaybeEvents = Annotated[tuple[str, ...] | None, _optional(Rule(_events, EVENTS_SCHEMA))]
MaybeDescription = Annotated[str | None, _optional(_DESCRIPTION)]
MaybeActive = Annotated[bool | None, _optional(Rule(_active, {"type": "boolean"}))]

_URL_DOC = (
    "`http://` or `https://`; its host must resolve to public addresses only (loopback, private, "
    "link-local, metadata and other special addresses are refused unless "
    "`STOCKMANAGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS` is set)"
)
_EVENTS_DOC = 'Event types to deliver, or `["*"]` for every deliverable type'


class NewWebhook(RequestBody):
    """Body of `POST /api/webhooks`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://erp.example.com/hooks/stockmanager",
                    "events": ["sale.created", "product.stock_low"],
                    "description": "ERP",
                }
            ]
        }
    )

    url: Annotated[UrlField, Field(description=_URL_DOC)]
    events: Annotated[EventsField, Field(description=_EVENTS_DOC)]
    description: Annotated[DescriptionField, Field(description="Free text")] = ""
    active: Annotated[ActiveField, Field(description="Deliver events (default true)")] = True


class WebhookChanges(RequestBody):
    """Body of `PUT /api/webhooks/{id}`: only the fields given change. Setting `active` to true
    again (e.g. after an automatic disable) also clears the failure count."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"active": True}]})

    url: Annotated[MaybeUrl, Field(description=_URL_DOC)] = None
    events: Annotated[MaybeEvents, Field(description=_EVENTS_DOC)] = None
    description: Annotated[MaybeDescription, Field(description="Free text")] = None
    active: Annotated[MaybeActive, Field(description="Deliver events")] = None


class RotateSecret(RequestBody):
    """Optional body of `POST /api/webhooks/{id}/rotate-secret`."""

    grace_seconds: Annotated[
        int | None,
        _optional(integer_rule(INVALID_GRACE, minimum=0, maximum=GRACE_MAX_SECONDS)),
        Field(
            description=(
                "How long the previous secret keeps signing too (default "
                "`STOCKMANAGER_WEBHOOKS_ROTATION_GRACE_SECONDS`, 86400); 0 ends it at once"
            )
        ),
    ] = None


# --------------------------------------------------------------------------------- responses


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


IsoTime = Annotated[str, Field(description="ISO 8601, UTC")]
DeliveryStatus = Literal["pending", "succeeded", "failed"]
assert set(DELIVERY_STATUSES) == {"pending", "succeeded", "failed"}


class Webhook(_Response):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    consecutive_failures: int = Field(description="Failed deliveries in a row (0 after a success)")
    failing_since: IsoTime | None = Field(description="First failure of the current row")
    disabled_reason: str | None = Field(description="Why it was disabled automatically")
    previous_secret_expires_at: IsoTime | None = Field(
        description="End of the previous secret's grace period after a rotation"
    )
    created_at: IsoTime
    updated_at: IsoTime


class WebhookWithSecret(Webhook):
    secret: str = Field(
        description="The signing secret (`whsec_...`). Shown only in this answer: store it now"
    )


class WebhookPage(_Response):
    data: list[Webhook]
    total: int
    page: int
    pages: int
    limit: int


class RotatedSecret(_Response):
    secret: str = Field(description="The new signing secret, shown only in this answer")
    previous_secret_expires_at: IsoTime | None = Field(
        description="Until then requests carry a signature with the previous secret too"
    )


class Delivery(_Response):
    id: int
    subscription_id: int
    event_id: str = Field(description="The event id; also the `webhook-id` header")
    event_type: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None = Field(description="HTTP status of the last attempt")
    response_body: str | None = Field(description="The first 500 characters of that answer")
    latency_ms: int | None = Field(description="Duration of the last attempt")
    last_error: str | None
    next_attempt_at: IsoTime | None = Field(description="Next retry (pending deliveries)")
    last_attempt_at: IsoTime | None
    delivered_at: IsoTime | None
    created_at: IsoTime


class DeliveryPage(_Response):
    data: list[Delivery]
    total: int
    page: int
    pages: int
    limit: int


class DeliveryQueued(_Response):
    message: str
    delivery_id: int


class Message(_Response):
    message: str


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def webhook_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "active": row.active,
        "consecutive_failures": row.consecutive_failures,
        "failing_since": _iso(row.failing_since),
        "disabled_reason": row.disabled_reason,
        "previous_secret_expires_at": _iso(row.previous_secret_expires_at),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def delivery_item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "event_id": str(row.event_id),
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "response_status": row.response_status,
        "response_body": row.response_body,
        "latency_ms": row.latency_ms,
        "last_error": row.last_error,
        "next_attempt_at": _iso(row.next_attempt_at) if row.status == "pending" else None,
        "last_attempt_at": _iso(row.last_attempt_at),
        "delivered_at": _iso(row.delivered_at),
        "created_at": _iso(row.created_at),
    }
