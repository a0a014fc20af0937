"""Wire shapes of the users service: upstream's exact success bodies, and the response models
that document them (`response_model=` on each route; request models are in
`schemas_requests.py`).

The endpoints answer with `json_response(...)` built by the helpers below; the models describe
those bodies field for field (tests validate real responses against them), so the OpenAPI
document and the fuzzer's schema checks tell the truth about what goes out.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, RootModel

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


# --- response models --------------------------------------------------------------------------


class Credentials(BaseModel):
    """The account a username (or e-mail) and password belong to (gateway login only)."""

    user_id: int
    username: str = Field(description="As stored (not as typed).")
    role: str = Field(description="root, admin or vendedor.")


class Message(BaseModel):
    message: str


class UserCreated(BaseModel):
    message: str = Field(examples=[USER_CREATED])
    id: int = Field(description="Id of the new account (an addition to upstream's body).")


class Success(BaseModel):
    success: bool = Field(description="Always true.")
    message: str


class User(BaseModel):
    """Upstream's user object."""

    id: int
    username: str
    email: str
    role: str = Field(description="root, admin or vendedor.")
    status: int = Field(description="1 active; 0 disabled, pending or rejected.")
    created_at: str = Field(
        description="Local time in the business time zone, `YYYY-MM-DD HH:MM:SS`.",
        examples=["2026-11-26 17:37:04"],
    )


class UserPage(BaseModel):
    data: list[User]
    total: int
    page: int
    pages: int = Field(description="At least 1.")
    limit: int


class VendorSuggestion(BaseModel):
    id: int
    username: str
    email: str


class VendorSuggestions(BaseModel):
    data: list[VendorSuggestion] = Field(
        description="Active sellers and admins whose username or e-mail contains `q` (at most 10)."
    )


class Application(BaseModel):
    id: int = Field(description="The applicant's user id.")
    username: str
    email: str
    created_at: str = Field(description="Local time, `YYYY-MM-DD HH:MM:SS`.")


class ApplicationPage(BaseModel):
    data: list[Application]
    page: int
    pages: int = Field(description="At least 1.")
    total: int


# --- business settings --------------------------------------------------------------------

SettingValue = str | int | bool
"""A single setting's value; its type depends on the key (see business_settings.SPECS)."""


class BusinessSection(BaseModel):
    name: str
    address: str
    phone: str
    tax_id: str
    currency: str = Field(description="ISO 4217, upper-case.")
    timezone: str = Field(description="Read-only: the deployment's STOCKMANAGER_TIMEZONE.")


class InventorySection(BaseModel):
    default_min_stock: int
    low_stock_alerts: bool


class SalesSection(BaseModel):
    default_payment_method: str
    receipt_footer: str


class AllSettings(BaseModel):
    """Every whitelisted setting with its effective value, nested by the key's first segment."""

    business: BusinessSection
    inventory: InventorySection
    sales: SalesSection


class OneSetting(RootModel[dict[str, SettingValue | dict[str, SettingValue]]]):
    """`{key: value}` for a leaf key, `{namespace: {name: value, ...}}` for a first segment."""


class SettingUpdated(BaseModel):
    success: bool = Field(description="Always true.")
    message: str = Field(examples=["Configuración 'business.name' actualizada correctamente"])
    data: dict[str, SettingValue] = Field(description="`{key: value}` as stored (normalised).")
