"""Request and response bodies of the gateway's own routes (login, session, health, debug,
the OpenAPI document), as Pydantic models: the handlers parse with them and the published
OpenAPI document describes them from the same classes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator
from pydantic.json_schema import models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"

DebugCommandName = Literal["health", "queues", "routes", "sessions", "versions"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# ------------------------------------------------------------------------------------ errors


class Error(BaseModel):
    """Every error answer: the (Spanish) message and a stable machine code. Some validation
    errors add details (e.g. `field`, or `allowed` for an unknown debug command)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(examples=["No autenticado"])
    code: str = Field(examples=["not_authenticated"])


# ------------------------------------------------------------------------- login / session


LOGIN_NAME_MAX = 100
"""Longest login name (trimmed): a username (at most 30 characters) or an e-mail (at most 100),
the users service's own limits (services/users/validation.py); a longer one cannot match."""

LOGIN_PASSWORD_MAX = 128
"""Longest password the users service accepts (6–128 characters)."""


class LoginRequest(BaseModel):
    """Credentials. `username` may also be the account's e-mail address. A name or password
    longer than any account's is refused with 400 before anything else happens."""

    username: StrictStr = Field(
        min_length=1,
        description="Must not be blank; trimmed, then at most 100 characters.",
        examples=["root"],
        json_schema_extra={"maxLength": LOGIN_NAME_MAX},
    )
    password: StrictStr = Field(
        min_length=1, examples=["secret"], json_schema_extra={"maxLength": LOGIN_PASSWORD_MAX}
    )

    _username_not_blank = field_validator("username")(_not_blank)


class LoginResponse(BaseModel):
    success: Literal[True]
    user_id: int
    username: str
    role: str = Field(examples=["root", "admin", "vendedor"])


class SessionInfo(BaseModel):
    """The logged-in user of the session cookie."""

    user_id: int
    username: str
    role: str = Field(examples=["root", "admin", "vendedor"])


class MessageResponse(BaseModel):
    message: str = Field(examples=["Sesión cerrada"])


# ------------------------------------------------------------------------------------ health


class HealthStatus(BaseModel):
    status: Literal["Ok"]


class HealthSummary(BaseModel):
    """`GET /api/health?deep=1` without a root session: the verdict only."""

    status: Literal["Ok", "Degraded"]


class ServiceHealth(BaseModel):
    status: Literal["ok", "down"]
    replicas: dict[str, str] = Field(description="Readiness per replica URL.")


class DeepHealth(BaseModel):
    """`GET /api/health?deep=1`: every service, PostgreSQL, Redis and the event backlog."""

    status: Literal["Ok", "Degraded"]
    down: list[str]
    services: dict[str, ServiceHealth]
    postgres: str
    redis: str
    events: dict[str, Any] = Field(
        description="Stream length and, per consumer group, pending and undelivered events."
    )


# ------------------------------------------------------------------------------------- debug


class DebugLogRequest(BaseModel):
    """A log line from a client; written to the central log as `[JS CLIENT] ...`."""

    message: StrictStr = Field(min_length=1, description="Must not be blank.")
    level: Any = Field(
        default="info",
        description="debug, info, warning (warn), error or critical; anything else logs at debug.",
        examples=["info"],
    )
    context: Any = Field(
        default=None, description="An object logged with the line (anything else is ignored)."
    )
    timestamp: Any = Field(default=None, description="The client's time, logged as it is.")

    _message_not_blank = field_validator("message")(_not_blank)


class DebugLogResponse(BaseModel):
    status: Literal["logged"]


class DebugLogsResponse(BaseModel):
    logs: list[str] = Field(description="The last central log lines, oldest first.")
    error: str | None = Field(default=None, description="Present when the log is unreadable.")


class DebugCommandRequest(BaseModel):
    """One named diagnostic from a fixed list (nothing else is ever executed)."""

    command: DebugCommandName


class DebugCommandResponse(BaseModel):
    command: DebugCommandName
    output: Any


# ----------------------------------------------------------------------------- the document

REQUEST_MODELS: tuple[type[BaseModel], ...] = (LoginRequest, DebugLogRequest, DebugCommandRequest)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    LoginResponse,
    SessionInfo,
    MessageResponse,
    HealthStatus,
    HealthSummary,
    DeepHealth,
    DebugLogResponse,
    DebugLogsResponse,
    DebugCommandResponse,
)


def component_schemas() -> dict[str, Any]:
    """The gateway's models as OpenAPI `components.schemas` (JSON Schema 2020-12)."""
    inputs = [(model, "validation") for model in REQUEST_MODELS]
    outputs = [(model, "serialization") for model in RESPONSE_MODELS]
    _, definitions = models_json_schema(
        [*inputs, *outputs],  # type: ignore[list-item]
        ref_template=REF_TEMPLATE,
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    return schemas


def ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}
