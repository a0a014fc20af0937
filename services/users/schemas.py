"""Wire shapes of the users service (upstream's exact success bodies)."""

from __future__ import annotations

from typing import Any

USER_CREATED = "Usuario creado exitosamente"
USER_UPDATED = "Usuario actualizado exitosamente"
NO_CHANGES = "No hay cambios que aplicar"
USER_DISABLED = "Usuario dado de baja"
REGISTERED = "Cuenta creada. Espera la aprobación del administrador."
APPLICATION_APPROVED = "Solicitud aprobada"
APPLICATION_REJECTED = "Solicitud rechazada"


def credentials_response(user_id: int, username: str, role: str) -> dict[str, Any]:
    return {"user_id": user_id, "username": username, "role": role}


def message(text: str, **extra: Any) -> dict[str, Any]:
    return {"message": text, **extra}


def success(text: str, **extra: Any) -> dict[str, Any]:
    return {"success": True, "message": text, **extra}


def setting_updated(key: str, data: dict[str, Any]) -> dict[str, Any]:
    return success(f"Configuración '{key}' actualizada correctamente", data=data)
