"""The error model: typed exceptions rendered by one handler as upstream-shaped JSON.

Body: `{"error": <upstream message>, "code": <stable machine code>, **extra}`. Endpoints raise;
they never build error JSON by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error with an HTTP status, a machine code and the (Spanish) upstream message."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Error interno del servidor"

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message if message is not None else self.default_message
        self.extra = extra
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


class ValidationFailed(ApiError):
    status = 400
    code = "validation_error"
    default_message = "Datos inválidos"


class InvalidJson(ValidationFailed):
    code = "invalid_json"
    default_message = "El cuerpo de la petición debe ser un objeto JSON válido"


class NotAuthenticated(ApiError):
    status = 401
    code = "not_authenticated"
    default_message = "No autenticado"


class InvalidCredentials(ApiError):
    status = 401
    code = "invalid_credentials"
    default_message = "Credenciales inválidas"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"
    default_message = "Permiso denegado"


class NotFound(ApiError):
    status = 404
    code = "not_found"
    default_message = "Ruta no encontrada"


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    default_message = "Método no permitido"


class Conflict(ApiError):
    status = 409
    code = "conflict"
    default_message = "Ya existe un registro con ese valor"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"
    default_message = "El cuerpo de la petición es demasiado grande"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Content-Type debe ser application/json"


class Unprocessable(ApiError):
    status = 422
    code = "unprocessable"
    default_message = "Petición no procesable"


class RateLimited(ApiError):
    status = 429
    code = "rate_limited"
    default_message = "Demasiados intentos. Intenta de nuevo más tarde"


class InternalError(ApiError):
    status = 500


class BadGateway(ApiError):
    status = 502
    code = "bad_gateway"
    default_message = "Respuesta inválida de un servicio interno"


class ServiceUnavailable(ApiError):
    status = 503
    code = "service_unavailable"
    default_message = "Servicio no disponible"


class GatewayTimeout(ApiError):
    status = 504
    code = "gateway_timeout"
    default_message = "El servicio tardó demasiado en responder"
