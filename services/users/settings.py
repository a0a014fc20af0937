"""Settings of the users service."""

from __future__ import annotations

from functools import lru_cache

from stockmanager.settings import KernelSettings


class UsersSettings(KernelSettings):
    root_username: str = "root"
    root_email: str = "root@localhost"
    # Password of the root account created at first start; generated and printed when unset.
    root_password: str | None = None


@lru_cache(maxsize=1)
def users_settings() -> UsersSettings:
    return UsersSettings()
