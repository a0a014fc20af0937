"""Client input PostgreSQL cannot store (NUL, lone surrogates) never costs an audit record."""

from __future__ import annotations

import time

from sqlalchemy import text

from services.audit.service import record_event
from stockmanager.contracts.events import LoginFailed, RequestRefused
from stockmanager.db import Database
from stockmanager.events import EventType, new_event
from stockmanager.identity import Identity

ANONYMOUS = Identity(
    user_id=None,
    username=None,
    role=None,
    request_id="r\x00id",
    ip="192.0.2.9",
    issued_at=time.time(),
)


async def test_a_refused_request_with_nul_in_its_path_is_recorded(db: Database) -> None:
    refused = new_event(
        EventType.REQUEST_REFUSED,
        identity=ANONYMOUS,
        entity_type="product",
        entity_id=None,
        status="error",
        data=RequestRefused(
            method="POST", path="/api/products/\x00", http_status=401, service="products"
        ),
    )
    failed = new_event(
        EventType.LOGIN_FAILED,
        identity=ANONYMOUS,
        entity_type="user",
        entity_id=None,
        status="error",
        data=LoginFailed(username="mal\x00lory", reason="rate_limited"),
    )
    async with db.connect() as conn:  # rolled back on exit
        await record_event(conn, refused)
        await record_event(conn, failed)
        rows = (
            await conn.execute(
                text(
                    "SELECT event_id::text AS id, description, new_value, request_id "
                    "FROM audit.audit_log WHERE event_id IN (CAST(:a AS uuid), CAST(:b AS uuid))"
                ),
                {"a": refused.id, "b": failed.id},
            )
        ).all()
    by_id = {row.id: row for row in rows}
    assert by_id[refused.id].description == (
        "Error al ejecutar post de Producto: HTTP 401 (POST /api/products/\ufffd)"
    )
    assert by_id[refused.id].request_id == "r\ufffdid"
    assert by_id[failed.id].description == (
        "Inicio de sesión fallido — Nombre de usuario: 'mal\ufffdlory' (Demasiados intentos)"
    )
    assert by_id[failed.id].new_value == {"username": "mal\ufffdlory", "reason": "rate_limited"}
