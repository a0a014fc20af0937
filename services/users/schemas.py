"""Wire shapes of the users service."""

from __future__ import annotations

from typing import Any


def credentials_response(user_id: int, username: str, role: str) -> dict[str, Any]:
    return {"user_id": user_id, "username": username, "role": role}
