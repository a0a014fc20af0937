"""One validation layer for every service endpoint, and one translator of its failures.

Request bodies and parameters are declared as Pydantic models and FastAPI parameters, so the
OpenAPI document comes from the same definitions the code runs. Two pieces make that keep
upstream's wire behaviour:

- `ContractRoute` (every service router's route class) reads a JSON body the way upstream's
  clients send it (`application/json`, `+json`, `text/plain`, or no content type at all) with
  orjson, and turns anything that is not a storable JSON object into an `InvalidBody` marker.
  FastAPI then validates the marker like any body; it fails, and the translator answers with the
  marker's error. Doing it this way keeps FastAPI's order: authentication and role dependencies
  are answered first, body errors after, as they were when bodies were parsed by a dependency.
  Query and path parameters with text PostgreSQL cannot store are refused before anything runs.
- `translate()` turns a `RequestValidationError` into the ApiError the client sees: a message
  raised with `fields.invalid()` is sent verbatim; missing fields are upstream's
  "Faltan campos requeridos"; anything else names the offending field.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import orjson
from fastapi.routing import APIRoute
from pydantic import BaseModel, model_validator
from starlette.requests import Request
from starlette.responses import Response

from stockmanager.contracts.fields import (
    ERROR_TYPE,
    UNSTORABLE_TEXT_MESSAGE,
    contains_unstorable,
    invalid,
    storable_text,
)
from stockmanager.errors import (
    ApiError,
    InvalidJson,
    UnsupportedMediaType,
    ValidationFailed,
)

MISSING_FIELDS_MESSAGE = "Faltan campos requeridos"
INVALID_PARAMETERS_MESSAGE = "Parámetros inválidos"
EMPTY_BODY_MESSAGE = "Se requiere un cuerpo JSON"
NOT_AN_OBJECT_MESSAGE = "El cuerpo de la petición debe ser un objeto JSON"

_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class InvalidBody:
    """Stands in for a request body that could not be read as a JSON object."""

    __slots__ = ("error",)

    def __init__(self, error: ApiError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"InvalidBody({self.error.message!r})"


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return True  # curl -d without a header still sends a body we can try to read
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/plain"


def read_json_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a body that must be a storable JSON object; the ApiError to answer otherwise."""
    if not is_json_content_type(content_type):
        raise UnsupportedMediaType()
    if not raw.strip():
        raise InvalidJson(EMPTY_BODY_MESSAGE)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson() from exc
    if not isinstance(data, dict):
        raise InvalidJson(NOT_AN_OBJECT_MESSAGE)
    # orjson refuses invalid UTF-8 and lone surrogates; an escaped NUL is the one thing left
    # that decodes fine and that PostgreSQL cannot store. Only walk the value when it may hold one.
    if b"\\u0000" in raw and contains_unstorable(data):
        raise ValidationFailed(UNSTORABLE_TEXT_MESSAGE)
    return data


def _unstorable_parameter(request: Request) -> bool:
    for key, value in request.query_params.multi_items():
        if not (storable_text(key) and storable_text(value)):
            return True
    return any(
        isinstance(value, str) and not storable_text(value)
        for value in request.path_params.values()
    )


class RequestBody(BaseModel):
    """The base of every JSON request body model (ContractRoute refuses any other).

    FastAPI validates bodies with `from_attributes=True`, so a model whose fields all have
    defaults would accept any object, the `InvalidBody` marker included, as an empty body.
    Refusing everything that is not a JSON object here lets the translator answer with the
    marker's own error ("Se requiere un cuerpo JSON", "...objeto JSON válido", 415 ...).
    """

    @model_validator(mode="before")
    @classmethod
    def _json_object(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise invalid(NOT_AN_OBJECT_MESSAGE)
        return data


def _body_models(annotation: Any) -> list[type]:
    """The classes a body annotation admits (`Model`, `Model | None`)."""
    members = getattr(annotation, "__args__", None) or (annotation,)
    return [member for member in members if isinstance(member, type) and member is not type(None)]


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ContractRoute(APIRoute):
    """The route class of every service router (see the module docstring)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None and not (self.openapi_extra or {}).get("x-raw-body"):
            for model in _body_models(self.body_field.field_info.annotation):
                if not issubclass(model, RequestBody):
                    raise TypeError(
                        f"{self.path}: body model {model.__name__} must extend "
                        "stockmanager.contracts.validation.RequestBody"
                    )

    def get_route_handler(self) -> Handler:
        handler: Handler = super().get_route_handler()
        body_field = self.body_field
        body_required = body_field is not None and body_field.field_info.is_required()

        async def checked(request: Request) -> Response:
            if _unstorable_parameter(request):
                raise ValidationFailed(f"{INVALID_PARAMETERS_MESSAGE}: {UNSTORABLE_TEXT_MESSAGE}")
            if body_field is None:
                return await handler(request)
            raw = await request.body()
            if not raw.strip() and not body_required:
                return await handler(request)
            parsed: dict[str, Any] | InvalidBody
            try:
                parsed = read_json_object(raw, request.headers.get("content-type"))
            except ApiError as error:
                parsed = InvalidBody(error)
            # Hand FastAPI the decoded value under a JSON content type, so it neither parses
            # the body a second time nor ignores a body labelled text/plain.
            scope = dict(request.scope)
            scope["headers"] = [
                header for header in request.scope["headers"] if header[0] != b"content-type"
            ] + [_JSON_CONTENT_TYPE]
            prepared = Request(scope, request.receive)
            prepared._body = raw or b"{}"
            prepared._json = parsed
            return await handler(prepared)

        return checked


def _field_name(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location[1:]) or str(location[0] if location else "")


def translate(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """The one client-facing error for a failed request validation (the first failure wins:
    models declare their fields in the order upstream validated them)."""
    if not errors:
        return ValidationFailed(INVALID_PARAMETERS_MESSAGE)
    for error in errors:
        if isinstance(error.get("input"), InvalidBody):
            return error["input"].error  # type: ignore[no-any-return]
    first = errors[0]
    location = tuple(first.get("loc", ()))
    kind = first.get("type")
    if kind == ERROR_TYPE:
        context = dict(first.get("ctx") or {})
        message = str(context.pop("message", INVALID_PARAMETERS_MESSAGE))
        return ValidationFailed(message, **context)
    if not location or location[0] != "body":
        return ValidationFailed(INVALID_PARAMETERS_MESSAGE)
    if kind == "missing":
        if location == ("body",):
            return InvalidJson(EMPTY_BODY_MESSAGE)
        return ValidationFailed(MISSING_FIELDS_MESSAGE)
    if len(location) == 1:
        return InvalidJson(NOT_AN_OBJECT_MESSAGE)
    field = _field_name(location)
    return ValidationFailed(f"Valor inválido en '{field}'", field=field)


class ErrorBody(BaseModel):
    """Every error answer: upstream's message plus a stable machine code (and, for some
    validation failures, the offending `field`)."""

    error: str
    code: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error statuses it can answer besides the common ones."""
    descriptions = {
        400: "Invalid input",
        401: "Not logged in",
        403: "Not allowed for this role or this record",
        404: "Not found",
        409: "Conflict with existing data",
        413: "Body too large",
        415: "Unsupported content type",
        422: "Request cannot be processed",
        429: "Too many attempts",
        502: "An upstream service answered badly",
        503: "Temporarily unavailable",
        504: "An upstream service timed out",
    }
    return {
        status: {"model": ErrorBody, "description": descriptions.get(status, "Error")}
        for status in statuses
    }
