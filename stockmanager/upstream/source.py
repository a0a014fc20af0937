"""Reading an upstream SQLite file (reference §3): both schema generations, any age of it.

Upstream adds columns with `ALTER TABLE ADD COLUMN` migrations that may have been skipped, so a
column that is missing is read as its upstream default; a missing optional table reads as empty.
The file is opened read-only and never changed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

GENERATION_OLDER: Final = "older (unique usernames)"
GENERATION_NEWER: Final = "newer (unique e-mails, usernames may repeat)"

REQUIRED_TABLES: Final = ("users", "items")


class UpstreamFileError(Exception):
    """The path is not an upstream StockManager database we can read."""


class UpstreamFile:
    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise UpstreamFileError(f"{path}: no such file")
        self.path = path
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            tables = {
                str(row[0])
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise UpstreamFileError(f"{path}: not an SQLite database ({exc})") from None
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise UpstreamFileError(
                f"{path}: not a StockManager database (no table {', '.join(missing)})"
            )
        self.tables = tables

    def close(self) -> None:
        self._db.close()

    def columns(self, table: str) -> set[str]:
        if table not in self.tables:
            return set()
        return {str(row[1]) for row in self._db.execute(f'PRAGMA table_info("{table}")')}

    def _unique_columns(self, table: str) -> set[str]:
        """Columns that carry a single-column UNIQUE constraint or index."""
        found = set()
        for index in self._db.execute(f'PRAGMA index_list("{table}")').fetchall():
            if not index[2]:  # not unique
                continue
            cols = self._db.execute(f'PRAGMA index_info("{index[1]}")').fetchall()
            if len(cols) == 1:
                found.add(str(cols[0][2]))
        return found

    @property
    def generation(self) -> str:
        """The older schema made usernames unique; the newer one e-mails only."""
        return GENERATION_OLDER if "username" in self._unique_columns("users") else GENERATION_NEWER

    def rows(self, table: str, wanted: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
        """The `wanted` columns of every row, in id order; a missing column reads as its given
        default (upstream's DDL default), a missing table as no rows."""
        if table not in self.tables:
            return iter(())
        present = self.columns(table)
        parts = []
        params: list[Any] = []
        for column, default in wanted.items():
            if column in present:
                parts.append(f'"{column}"')
            else:
                parts.append("?")
                params.append(default)
        order = ' ORDER BY "id"' if "id" in present else ""
        return iter(self._db.execute(f'SELECT {", ".join(parts)} FROM "{table}"{order}', params))

    def first_user(self) -> tuple[Any, ...] | None:
        row = self._db.execute(
            "SELECT id, username, created_at FROM users ORDER BY id LIMIT 1"
        ).fetchone()
        return tuple(row) if row is not None else None

    def fingerprint(self) -> str:
        """sha256 of the file's bytes (the report names exactly what was imported)."""
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def source_id(self) -> str:
        """A name of the upstream *shop*, stable while its database grows: derived from its
        first account (never hard-deleted upstream). Re-importing a newer copy of the same
        shop finds the rows of earlier imports under this name; another shop gets another."""
        first = self.first_user()
        seed = repr(first) if first is not None else str(self.path.resolve())
        return "sm-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
