"""One place that turns every failure into upstream-shaped JSON: never HTML, never a trace."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from stockmanager.contracts.validation import translate
from stockmanager.db import CHECK_VIOLATION, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION, sqlstate
from stockmanager.errors import (
    ApiError,
    Conflict,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
)
from stockmanager.http import json_response

log = logging.getLogger("stockmanager.errors")


def render(error: ApiError) -> Response:
    return json_response(error.body(), status_code=error.status, headers=error.headers)


def error_for_http_status(status: int, detail: object = None) -> ApiError:
    if status == 404:
        return NotFound()
    if status == 405:
        return MethodNotAllowed()
    if status == 413:
        return PayloadTooLarge()
    if 400 <= status < 500:
        return ValidationFailed(str(detail) if isinstance(detail, str) else None)
    return InternalError()


def error_for_db(exc: DBAPIError) -> ApiError:
    if exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError):
        # The database went away mid-request (restart, network): a retry can succeed.
        return ServiceUnavailable()
    state = sqlstate(exc)
    if state == UNIQUE_VIOLATION:
        return Conflict()
    if state == FOREIGN_KEY_VIOLATION:
        return ValidationFailed("Referencia inválida: el registro relacionado no existe")
    if state == CHECK_VIOLATION:
        return ValidationFailed()
    return InternalError("Error en la base de datos")


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return render(exc)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return render(error_for_http_status(exc.status_code, exc.detail))

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return render(translate(exc.errors()))

    async def db_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DBAPIError)
        error = error_for_db(exc)
        if error.status >= 500:
            log.error("database error", exc_info=exc, extra={"path": request.url.path})
        return render(error)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return render(InternalError())

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(IntegrityError, db_error)
    app.add_exception_handler(DBAPIError, db_error)
    app.add_exception_handler(Exception, unexpected)
