"""The upstream shops the import tests bring over, with every data problem of issue 16."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.support.upstream_sqlite import UpstreamDb, werkzeug_hash

# Local data created through the API before the import (merges and id collisions).
LOCAL_USER = "carla"
LOCAL_BARCODE = "LOCAL-0001"
LOCAL_STOCK = 7


def older_shop(path: Path) -> Path:
    """Older schema generation (unique usernames; e-mails may repeat)."""
    db = UpstreamDb(path, "older")
    db.user(1, "jefe", "jefe@shop.example", role="root", password="jefe-pass")
    db.user(2, "ana", "ana@shop.example", password="ana-pass")
    # Same e-mail as ana (allowed by this generation): renamed. A scrypt hash.
    db.user(
        3, "beto", "ANA@shop.example", password_hash=werkzeug_hash("beto-pass", method="scrypt")
    )
    db.user(4, LOCAL_USER, "carla@upstream.example", password="carla-upstream")  # merged
    db.user(5, "dora", "dora@shop.example", role="ADMIN", password="dora-pass", status=7)
    db.item(1, "Yerba 1kg", 1234.5, 10, barcode="779001", expiration_date="31/12/2026")
    db.item(2, "Leche local", 80.0, 99, barcode=LOCAL_BARCODE)  # merged into the local one
    db.item(3, "Galletitas", "abc", -4, barcode="779003")  # malformed price, negative stock
    db.item(4, "Fideos de sémola extra largos", 2.5, 3, min_quantity=-1, expiration_date="mañana")
    db.sale(1, "2025-02-01 21:30:00", 2, [(1, 2, 1234.5), (3, 1, 10.0)], payment_method="Tarjeta")
    db.sale(2, "2025-02-01 10:00:00", 3, [(1, 1, 1200.0), (1, 1, 1300.0)])  # merged lines
    db.sale(3, "2025-02-02 09:15:00", 99, [(42, 3, 5.5)], vendedor="viejo")  # seller gone
    db.sale(4, "no es fecha", 2, [(1, 1, 1234.5)])  # malformed date: skipped with its line
    db.sale(5, "2025-02-02 11:00:00", 2, [])  # header without lines
    db.sale(6, "2025-02-03 23:59:59", 4, [(2, 1, 80.0), (4, 2, 2.5)])
    db.sale(7, "2025-02-03 08:00:00", 5, [(1, 0, 1234.5), (4, 1, 2.5)])  # one line qty 0
    db.line(500, 1, 1, 1234.5)  # orphan line
    db.notification(1, 2, "Stock bajo: Yerba", type_="warning")
    db.notification(2, 77, "De nadie")  # orphan
    db.audit(
        1,
        2,
        "create",
        "product",
        1,
        "Nuevo Producto creado — Nombre: 'Yerba 1kg'",
        timestamp="2025-02-01T21:30:00.123456",
        new_value='{"name": "Yerba 1kg"}',
    )
    db.audit(2, 2, "update", "product", 1, "Cambios", new_value="{roto", ip="no-ip")
    db.audit(3, 9, "login", "user", 9, "Usuario borrado")  # user missing: kept without user
    return db.close()


def newer_shop(path: Path) -> Path:
    """Newer schema generation (unique e-mails; usernames may repeat), another shop."""
    db = UpstreamDb(path, "newer")
    db.user(1, "eva", "eva@otra.example", password="eva-pass", role="admin")
    db.user(2, "EVA", "eva2@otra.example", password="eva2-pass")  # same name: renamed
    db.user(3, "ana", "ana@otra.example", password="otra")  # matches file A's ana
    db.item(1, "Yerba 1kg (otra)", 1300.0, 5, barcode="779001")  # matches by barcode
    db.item(2, "Mate", 9000.0, 2, barcode="OTRA-2")
    db.sale(1, "2025-03-10 12:00:00", 1, [(1, 1, 1300.0), (2, 1, 9000.0)])
    db.sale(2, "2025-03-11 12:00:00", 2, [(2, 1, 9000.0)])
    return db.close()


def upstream_daily(path: Path, first: str, last: str) -> dict[str, dict[str, Any]]:
    """Upstream's own per-day figures (reference §5.2): sells JOIN details by DATE(s.date)."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        """
        SELECT DATE(s.date), SUM(d.quantity * d.price), COUNT(DISTINCT s.id), SUM(d.quantity)
          FROM sells s JOIN details d ON d.sell_id = s.id
         WHERE DATE(s.date) BETWEEN ? AND ?
         GROUP BY 1
        """,
        (first, last),
    ).fetchall()
    by_hour: dict[int, set[int]] = defaultdict(set)
    for sid, hour in conn.execute(
        "SELECT s.id, CAST(strftime('%H', s.date) AS INTEGER) FROM sells s"
        " JOIN details d ON d.sell_id = s.id WHERE DATE(s.date) BETWEEN ? AND ?",
        (first, last),
    ):
        by_hour[hour].add(sid)
    conn.close()
    days = {day: {"revenue": round(rev, 2), "sales": n, "units": u} for day, rev, n, u in rows}
    return {"days": days, "hours": {h: len(ids) for h, ids in by_hour.items()}}
