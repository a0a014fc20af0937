"""Wire shapes of the notifications service, and parsing of the manual-create body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.notifications.tables import NOTIFICATION_TYPES
from stockmanager.errors import ValidationFailed
from stockmanager.timefmt import local_str

MESSAGE_READ = "Notificación marcada como leída"
MESSAGE_ALL_READ = "Todas las notificaciones marcadas como leídas"
MESSAGE_CREATED = "Notificación creada exitosamente"
MESSAGE_DELETED = "Notificación eliminada exitosamente"

# Limits of a manual notification (upstream had none; these keep a row displayable).
TITLE_MAX = 200
MESSAGE_MAX = 2000
ACTION_URL_MAX = 500
BIGINT_MAX = 2**63 - 1


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


@dataclass(frozen=True, slots=True)
class NewNotification:
    user_id: int
    title: str
    message: str
    type: str
    action_url: str | None


def _user_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationFailed("user_id inválido")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not 0 < value <= BIGINT_MAX:
        raise ValidationFailed("user_id inválido")
    return value


def parse_new_notification(body: dict[str, Any]) -> NewNotification:
    user_id, title, message = body.get("user_id"), body.get("title"), body.get("message")
    # Upstream's check: any of the three falsy (missing, null, 0, "").
    if not user_id or not title or not message:
        raise ValidationFailed("Faltan campos requeridos")
    if not isinstance(title, str) or not isinstance(message, str):
        raise ValidationFailed("El título y el mensaje deben ser texto")
    title, message = title.strip(), message.strip()
    if not title or not message:
        raise ValidationFailed("Faltan campos requeridos")
    if len(title) > TITLE_MAX:
        raise ValidationFailed(f"El título no puede superar {TITLE_MAX} caracteres")
    if len(message) > MESSAGE_MAX:
        raise ValidationFailed(f"El mensaje no puede superar {MESSAGE_MAX} caracteres")
    type_ = body.get("type", "info")
    if type_ is None:
        type_ = "info"
    if not isinstance(type_, str) or type_ not in NOTIFICATION_TYPES:
        raise ValidationFailed(
            "Tipo de notificación inválido (info, warning, success o error)",
        )
    action_url = body.get("action_url")
    if action_url is not None:
        if not isinstance(action_url, str):
            raise ValidationFailed("action_url inválido")
        action_url = action_url.strip() or None
        if action_url is not None and len(action_url) > ACTION_URL_MAX:
            raise ValidationFailed(f"action_url no puede superar {ACTION_URL_MAX} caracteres")
    return NewNotification(_user_id(user_id), title, message, type_, action_url)
