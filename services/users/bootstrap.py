"""Creates the single root account at first start."""

from __future__ import annotations

import asyncio
import secrets

from services.users import passwords, repository
from services.users.settings import UsersSettings
from stockmanager.db import Database


async def _ensure_root(settings: UsersSettings, password: str | None) -> tuple[bool, str | None]:
    db = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with db.transaction() as conn:
            if await repository.root_exists(conn):
                return False, None
            chosen = password or secrets.token_urlsafe(12)
            password_hash = await asyncio.to_thread(passwords.hash_password, chosen)
            created = await repository.insert_root(
                conn,
                username=settings.root_username,
                email=settings.root_email,
                password_hash=password_hash,
            )
            return created is not None, chosen if created is not None else None
    finally:
        await db.dispose()


def ensure_root(password: str | None = None) -> tuple[bool, str | None]:
    """Create root if missing. Returns (created, password); the password only when created."""
    settings = UsersSettings()
    return asyncio.run(_ensure_root(settings, password or settings.root_password))
