"""Upstream StockManager SQLite databases (reference §3) for import-upstream tests and the bench.

Both schema generations: `older` made usernames UNIQUE and e-mails not; `newer` the other way
round (and added the notifications CHECK). Rows are inserted as upstream stores them: local
times as `YYYY-MM-DD HH:MM:SS`, audit timestamps as local ISO with `T` and microseconds, user
creation times in UTC.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any


def werkzeug_hash(password: str, *, method: str = "pbkdf2", salt: str = "UpStReAm") -> str:
    """A hash as upstream's Werkzeug stores it (`pbkdf2:sha256:<n>$salt$hex`, `scrypt:...`)."""
    if method == "scrypt":
        n, r, p = 16384, 8, 1
        digest = hashlib.scrypt(
            password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p
        ).hex()
        return f"scrypt:{n}:{r}:{p}${salt}${digest}"
    iterations = 1000  # cheap for tests; upstream's default is 600000
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2:sha256:{iterations}${salt}${digest}"


def _users_ddl(generation: str) -> str:
    if generation == "older":
        username, email = "TEXT NOT NULL UNIQUE", "TEXT NOT NULL"
    else:
        username, email = "TEXT NOT NULL", "TEXT NOT NULL UNIQUE"
    return f"""
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE,
        username {username},
        password TEXT NOT NULL,
        email {email},
        role TEXT NOT NULL,
        status INTEGER NOT NULL DEFAULT 1,
        application TEXT NOT NULL DEFAULT 'pending',
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        history TEXT
    );
    """


def _notifications_ddl(generation: str) -> str:
    check = " CHECK (type IN ('info','warning','success','error'))" if generation == "newer" else ""
    return f"""
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        message TEXT,
        type TEXT DEFAULT 'info'{check},
        action_url TEXT,
        is_read INTEGER DEFAULT 0,
        created_at TEXT DEFAULT CURRENT_TIMESTAMP
    );
    """


SHOP_DDL = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY NOT NULL,
    barrs_code TEXT UNIQUE,
    description TEXT,
    name TEXT NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 0,
    min_quantity INTEGER NOT NULL DEFAULT 5,
    price REAL NOT NULL,
    expiration_date TEXT,
    status INTEGER NOT NULL DEFAULT 1,
    notified_low_stock INTEGER NOT NULL DEFAULT 0,
    created_at TEXT,
    updated_at TEXT
);
CREATE TABLE sells (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id),
    date TEXT NOT NULL,
    vendor_id INTEGER NOT NULL REFERENCES users(id),
    payment_method TEXT NOT NULL DEFAULT 'Efectivo',
    vendedor TEXT NOT NULL DEFAULT 'unknown'
);
CREATE TABLE details (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sell_id INTEGER NOT NULL REFERENCES sells(id),
    item_id INTEGER NOT NULL REFERENCES items(id),
    quantity INTEGER NOT NULL,
    price REAL NOT NULL,
    vendor_id INTEGER NOT NULL REFERENCES users(id),
    payment_method TEXT NOT NULL DEFAULT 'Efectivo',
    vendedor TEXT DEFAULT 'unknown'
);
CREATE TABLE password_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    code TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id),
    action TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id INTEGER,
    old_value TEXT,
    new_value TEXT,
    description TEXT,
    ip_address TEXT,
    timestamp TEXT DEFAULT CURRENT_TIMESTAMP,
    status TEXT DEFAULT 'success'
);
CREATE INDEX idx_sells_date_vendor ON sells (date, vendor_id);
CREATE INDEX idx_details_sell ON details (sell_id);
CREATE INDEX idx_details_item ON details (item_id);
CREATE INDEX idx_items_name ON items (name);
"""


class UpstreamDb:
    """An upstream database file being written (no foreign-key enforcement, as upstream)."""

    def __init__(self, path: Path, generation: str = "newer") -> None:
        assert generation in ("older", "newer")
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.executescript(_users_ddl(generation) + _notifications_ddl(generation) + SHOP_DDL)

    def user(
        self,
        uid: int,
        username: str,
        email: str,
        *,
        password: str = "secret-1",
        password_hash: str | None = None,
        role: str = "vendedor",
        status: Any = 1,
        application: Any = "accepted",
        created_at: Any = "2025-01-02 03:04:05",
    ) -> None:
        hashed = password_hash or werkzeug_hash(password)
        self.conn.execute(
            "INSERT INTO users (id, username, password, email, role, status, application,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, username, hashed, email, role, status, application, created_at),
        )

    def item(
        self,
        pid: int,
        name: str,
        price: Any,
        quantity: Any = 10,
        *,
        barcode: str | None = None,
        min_quantity: Any = 5,
        description: str | None = "",
        expiration_date: Any = None,
        status: Any = 1,
        created_at: Any = "2025-01-01 10:00:00",
    ) -> None:
        self.conn.execute(
            "INSERT INTO items (id, barrs_code, description, name, quantity, min_quantity, price,"
            " expiration_date, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pid,
                barcode,
                description,
                name,
                quantity,
                min_quantity,
                price,
                expiration_date,
                status,
                created_at,
                created_at,
            ),
        )

    def sale(
        self,
        sid: int,
        date: Any,
        vendor_id: int,
        lines: list[tuple[int, Any, Any]],
        *,
        payment_method: str = "Efectivo",
        vendedor: str = "unknown",
    ) -> None:
        """`lines`: (item id, quantity, unit price)."""
        first = lines[0][0] if lines else 0
        self.conn.execute(
            "INSERT INTO sells (id, item_id, date, vendor_id, payment_method, vendedor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sid, first, date, vendor_id, payment_method, vendedor),
        )
        self.conn.executemany(
            "INSERT INTO details (sell_id, item_id, quantity, price, vendor_id, payment_method)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(sid, item, qty, price, vendor_id, payment_method) for item, qty, price in lines],
        )

    def line(self, sid: int, item: int, quantity: Any, price: Any, vendor_id: int = 1) -> None:
        self.conn.execute(
            "INSERT INTO details (sell_id, item_id, quantity, price, vendor_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (sid, item, quantity, price, vendor_id),
        )

    def notification(
        self,
        nid: int,
        user_id: int,
        title: str,
        *,
        type_: str = "info",
        is_read: int = 0,
        created_at: str = "2025-03-01 12:00:00",
    ) -> None:
        self.conn.execute(
            "INSERT INTO notifications (id, user_id, title, message, type, is_read, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (nid, user_id, title, f"{title} (mensaje)", type_, is_read, created_at),
        )

    def audit(
        self,
        aid: int,
        user_id: int,
        action: str,
        entity_type: str,
        entity_id: int | None,
        description: str,
        *,
        timestamp: str = "2025-03-01T12:00:00.123456",
        new_value: str | None = None,
        ip: str | None = "192.0.2.7",
    ) -> None:
        self.conn.execute(
            "INSERT INTO audit_log (id, user_id, action, entity_type, entity_id, old_value,"
            " new_value, description, ip_address, timestamp, status)"
            " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, 'success')",
            (aid, user_id, action, entity_type, entity_id, new_value, description, ip, timestamp),
        )

    def close(self) -> Path:
        self.conn.commit()
        self.conn.close()
        return self.path
