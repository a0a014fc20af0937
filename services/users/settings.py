"""Settings of the users service."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from services.users.passwords import default_max_concurrency
from stockmanager.settings import KernelSettings

SmtpTls = Literal["none", "starttls", "ssl"]


class UsersSettings(KernelSettings):
    root_username: str = "root"
    root_email: str = "root@localhost"
    # Password of the root account created at first start; generated and printed when unset.
    root_password: str | None = None

    # Outgoing mail for password-reset codes. Without a host no mail is sent: a warning at
    # startup says so, and each reset request logs that its code could not be delivered
    # (without the code).
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)  # default by smtp_tls: 25/587/465
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "StockManager <no-reply@localhost>"
    smtp_tls: SmtpTls = "starttls"
    smtp_timeout: float = Field(10.0, gt=0)
    # Development only (STOCKMANAGER_LOG_RESET_CODES=1): without SMTP, write the reset mail,
    # code included, to the log. Logs reach /api/debug/logs, Redis and log collectors, so a code
    # there lets whoever reads them take over the account: never enable it in production.
    log_reset_codes: bool = False

    # Password reset hardening (decisions §5).
    reset_code_ttl_seconds: int = Field(15 * 60, ge=60)
    reset_max_attempts: int = Field(5, ge=1)
    # At most this many codes are sent per account per window; further requests still answer
    # 200 with the same message but send nothing (no mail bombing through the API).
    reset_max_requests: int = Field(5, ge=1)
    reset_request_window_seconds: int = Field(15 * 60, ge=60)
    # Per account and day (24 h from the first event): codes issued, and wrong codes tried
    # (across all its codes). Past either cap the answers are the usual ones: the request step
    # still says "sent" but sends nothing, and every code is refused as invalid.
    reset_daily_max_requests: int = Field(10, ge=1)
    reset_daily_max_wrong_codes: int = Field(20, ge=1)

    # Argon2 computations running at once in this process (each takes Argon2's memory cost,
    # 64 MiB): the default fits 256 MiB. Size it to the container's memory limit.
    argon2_max_concurrency: int = Field(default_factory=default_max_concurrency, ge=1)

    # Wrong current passwords on PUT /api/settings/password before 429, per user and window.
    password_change_max_failures: int = Field(5, ge=1)
    password_change_failure_window: int = Field(15 * 60, ge=1)

    @property
    def smtp_effective_port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return {"none": 25, "starttls": 587, "ssl": 465}[self.smtp_tls]


@lru_cache(maxsize=1)
def users_settings() -> UsersSettings:
    return UsersSettings()
