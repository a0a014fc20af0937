"""The gateway's typed events (debug commands, refused requests) recorded through the real stack."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import text

from stockmanager.db import Database
from tests.audit.support import as_root
from tests.support.stack import Stack, unique


async def records_by_request(db: Database, request_ids: set[str]) -> dict[str, Any]:
    """Poll until every request id has its audit record."""
    deadline = time.monotonic() + 30
    while True:
        async with db.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT * FROM audit.audit_log WHERE request_id = ANY(:ids)"),
                    {"ids": sorted(request_ids)},
                )
            ).all()
        found = {row.request_id: row for row in rows}
        if set(found) == request_ids:
            return found
        assert time.monotonic() < deadline, f"not audited: {request_ids - set(found)}"
        await asyncio.sleep(0.1)


async def test_debug_commands_and_a_refused_request_with_nul_are_recorded(
    stack: Stack, db: Database
) -> None:
    tag = unique("gw-ev-")
    with as_root(stack) as root:
        ran = root.post(
            "/api/debug/command", json={"command": "health"}, headers={"X-Request-ID": f"{tag}-ok"}
        )
        assert ran.status_code == 200, ran.text
        refused = root.post(
            "/api/debug/command", json={"command": "nope"}, headers={"X-Request-ID": f"{tag}-no"}
        )
        assert refused.status_code == 400
    with stack.client() as anonymous:
        nul = anonymous.put(
            "/api/settings/actual/a%00b", json={"value": 1}, headers={"X-Request-ID": f"{tag}-nul"}
        )
        assert nul.status_code == 401
    found = await records_by_request(db, {f"{tag}-ok", f"{tag}-no", f"{tag}-nul"})
    ok, no, nul_path = found[f"{tag}-ok"], found[f"{tag}-no"], found[f"{tag}-nul"]
    assert (ok.action, ok.status, ok.description) == (
        "debug_command",
        "success",
        "Comando de diagnóstico ejecutado: 'health'",
    )
    assert (no.action, no.status, no.description) == (
        "debug_command",
        "error",
        "Comando de diagnóstico rechazado: 'nope'",
    )
    assert (nul_path.action, nul_path.status, nul_path.user_id) == (
        "update",
        "error",
        None,
    )
    assert nul_path.description.endswith("HTTP 401 (PUT /api/settings/actual/a\ufffdb)")
