"""Plain-function factories for test data that must exist before the API can create it."""

from __future__ import annotations

import psycopg

from services.users.passwords import hash_password


def create_user_row(
    database_url: str,
    username: str,
    password: str,
    role: str = "vendedor",
    *,
    email: str | None = None,
    status: int = 1,
    application: str = "accepted",
    password_hash: str | None = None,
) -> int:
    """Insert a user straight into `users.users` (for tests of other services' access rules)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO users.users (username, email, password_hash, role, status, application)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (
                username,
                email or f"{username}@example.test",
                password_hash or hash_password(password),
                role,
                status,
                application,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])
