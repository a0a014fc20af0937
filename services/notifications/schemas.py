"""Wire shapes of the notifications service: the manual-create body (validated by the kernel's
contract layer, with upstream's messages) and the response models of every endpoint.

The endpoints answer with fast `json_response(...)` bodies built by `unread_item` / `full_item`;
the response models below document exactly those bodies (and the tests check real answers
against them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.notifications.tables import NOTIFICATION_TYPES
from stockmanager.contracts.fields import (
    BIGINT_MAX,
    Rule,
    check_storable,
    integer_rule,
    invalid,
    text_rule,
)
from stockmanager.contracts.validation import RequestBody
from stockmanager.timefmt import local_str

MESSAGE_READ = "Notificación marcada como leída"
MESSAGE_ALL_READ = "Todas las notificaciones marcadas como leídas"
MESSAGE_CREATED = "Notificación creada exitosamente"
MESSAGE_DELETED = "Notificación eliminada exitosamente"

# Limits of a manual notification (upstream had none; these keep a row displayable).
TITLE_MAX = 200
MESSAGE_MAX = 2000
ACTION_URL_MAX = 500

MISSING_FIELDS = "Faltan campos requeridos"
NOT_TEXT = "El título y el mensaje deben ser texto"
INVALID_TYPE = "Tipo de notificación inválido (info, warning, success o error)"
INVALID_ACTION_URL = "action_url inválido"
UNSAFE_ACTION_URL = (
    "action_url debe ser una ruta relativa que empiece con / o una URL http:// o https://"
)
INVALID_USER_ID = "user_id inválido"

NotificationType = Literal["info", "warning", "success", "error"]
LOCAL_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


# ------------------------------------------------------------------------------ request body


def _type(value: object) -> str:
    if value is None:
        return "info"
    if not isinstance(value, str) or value not in NOTIFICATION_TYPES:
        raise invalid(INVALID_TYPE)
    return value


def _action_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(INVALID_ACTION_URL)
    url = value.strip()
    if not url:
        return None
    if len(url) > ACTION_URL_MAX:
        raise invalid(f"action_url no puede superar {ACTION_URL_MAX} caracteres")
    if not _safe_link(url):
        raise invalid(UNSAFE_ACTION_URL)
    return check_storable(url)


def _safe_link(url: str) -> bool:
    """A link the UI may follow: `http(s)://host...` or a path on this site (`/...`).

    Everything else (`javascript:`, `data:`, `vbscript:`, protocol-relative `//host`) is refused.
    Browsers drop tabs and newlines inside a URL and read a backslash as `/`, so `/<backslash>evil`
    or `java<TAB>script:` would slip past a prefix check: control characters and backslashes
    are refused.
    """
    if "\\" in url or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    scheme, _, rest = url.partition("://")
    return scheme.lower() in ("http", "https") and bool(rest) and not rest.startswith("/")


TitleText = Annotated[
    str, text_rule(f"El título no puede superar {TITLE_MAX} caracteres", max_length=TITLE_MAX)
]
MessageText = Annotated[
    str,
    text_rule(f"El mensaje no puede superar {MESSAGE_MAX} caracteres", max_length=MESSAGE_MAX),
]
TypeField = Annotated[
    str,
    Rule(
        _type,
        {
            "anyOf": [{"type": "string", "enum": list(NOTIFICATION_TYPES)}, {"type": "null"}],
            "default": "info",
        },
    ),
]
ActionUrlField = Annotated[
    str | None,
    Rule(
        _action_url,
        {
            "anyOf": [{"type": "string", "maxLength": ACTION_URL_MAX}, {"type": "null"}],
            "default": None,
        },
    ),
]
UserId = Annotated[int, integer_rule(INVALID_USER_ID, minimum=1, maximum=BIGINT_MAX)]


class NewNotification(RequestBody):
    """Body of `POST /api/notifications/create`. Checked in upstream's order: `user_id`,
    `title` and `message` present and truthy, title and message texts, their lengths, `type`,
    `action_url`, then `user_id` a positive integer (a string of digits is accepted)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": 12,
                    "title": "Inventario",
                    "message": "Revisar el depósito",
                    "type": "info",
                    "action_url": "/productos",
                }
            ]
        }
    )

    title: Annotated[TitleText, Field(description="Trimmed; 1 to 200 characters")]
    message: Annotated[MessageText, Field(description="Trimmed; 1 to 2000 characters")]
    type: Annotated[TypeField, Field(description="`info` when absent or null")] = "info"
    action_url: Annotated[
        ActionUrlField, Field(description="Optional link for the UI; blank counts as null")
    ] = None
    user_id: Annotated[
        UserId,
        Field(description="The recipient: an active user with an accepted application"),
    ]

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # not an object: RequestBody refuses it
        user_id, title, message = data.get("user_id"), data.get("title"), data.get("message")
        # Upstream's check: any of the three falsy (missing, null, 0, "").
        if not user_id or not title or not message:
            raise invalid(MISSING_FIELDS)
        if not isinstance(title, str) or not isinstance(message, str):
            raise invalid(NOT_TEXT)
        if not title.strip() or not message.strip():
            raise invalid(MISSING_FIELDS)
        return data


# --------------------------------------------------------------------------------- responses


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Response):
    """A confirmation."""

    message: str


class UnreadNotification(_Response):
    id: int
    title: str
    message: str | None
    type: NotificationType
    action_url: str | None = Field(description="Optional link for the UI")
    created_at: str = Field(
        description="`YYYY-MM-DD HH:MM:SS` in the business time zone",
        pattern=LOCAL_TIME_PATTERN,
    )


class Notification(UnreadNotification):
    is_read: Literal[0, 1] = Field(description="1 once read (upstream's integer flag)")


class UnreadList(_Response):
    """Up to 10 of the caller's unread notifications, newest first."""

    notifications: list[UnreadNotification]
    unread_count: int = Field(description="All unread notifications, not only those listed")


class StreamPayload(_Response):
    """The `data` of an `init` (5 newest unread) or `update` (10 newest unread) stream event."""

    notifications: list[UnreadNotification]
    count: int = Field(description="All unread notifications of the caller")


def unread_item(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "message": row.message,
        "type": row.type,
        "action_url": row.action_url,
        "created_at": local_str(row.created_at, tz),
    }


def full_item(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    return {**unread_item(row, tz), "is_read": 1 if row.is_read else 0}
