"""Outgoing mail (password-reset codes): SMTP when configured; otherwise nothing is delivered and
only the fact is logged (the code itself only under the development setting log_reset_codes).

smtplib is blocking, so it runs in a worker thread; the request that triggered a mail never waits
for it. Mail is only handed over after the transaction that created its content committed (the
caller sends after leaving `runtime.transaction()`), so a rolled-back code is never mailed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from services.users.settings import UsersSettings

log = logging.getLogger("users.mail")

DRAIN_SECONDS = 10.0


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: UsersSettings) -> None:
        assert settings.smtp_host
        self.host = settings.smtp_host
        self.port = settings.smtp_effective_port
        self.tls = settings.smtp_tls
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.timeout = settings.smtp_timeout

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.tls == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


class LogMailer:
    """No SMTP server configured: the mail cannot be delivered.

    Only the recipient and subject are logged; the body (which holds the reset code) only when
    the development setting `log_reset_codes` asks for it.
    """

    def __init__(self, *, include_body: bool = False) -> None:
        self.include_body = include_body

    async def send(self, message: EmailMessage) -> None:
        if self.include_body:
            log.warning(
                "SMTP not configured; mail written to the log instead (development only)",
                extra={
                    "mail_to": message["To"],
                    "mail_subject": message["Subject"],
                    "mail_body": message.get_content(),
                },
            )
            return
        log.warning(
            "SMTP not configured; mail not delivered",
            extra={"mail_to": message["To"], "mail_subject": message["Subject"]},
        )


def mailer_for(settings: UsersSettings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return LogMailer(include_body=settings.log_reset_codes)


def warn_if_unconfigured(settings: UsersSettings) -> None:
    """Tell the operator at startup that password-reset codes cannot reach anyone."""
    if settings.smtp_host:
        return
    log.warning(
        "SMTP is not configured (STOCKMANAGER_SMTP_HOST): mail is disabled and password-reset "
        "codes cannot be delivered"
        + (
            "; STOCKMANAGER_LOG_RESET_CODES is on, so codes are written to the log "
            "(development only, never in production)"
            if settings.log_reset_codes
            else ""
        )
    )


class MailDispatcher:
    """Sends mail in the background, one message at a time and in the order dispatched (so a
    user who asks twice gets the newer code last), and drains the queue at shutdown."""

    def __init__(self, mailer: Mailer, *, retries: int = 2, queue_size: int = 1000) -> None:
        self.mailer = mailer
        self.retries = retries
        self.queue: asyncio.Queue[EmailMessage] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="users-mail")

    def dispatch(self, message: EmailMessage) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.error(
                "mail queue full, message dropped", extra={"mail_subject": message["Subject"]}
            )

    async def _run(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                await self._deliver(message)
            finally:
                self.queue.task_done()

    async def _deliver(self, message: EmailMessage) -> None:
        for attempt in range(self.retries + 1):
            try:
                await self.mailer.send(message)
                return
            except (OSError, smtplib.SMTPException) as exc:
                transient = not isinstance(exc, smtplib.SMTPResponseException) or (
                    400 <= exc.smtp_code < 500
                )
                if attempt < self.retries and transient:
                    await asyncio.sleep(1.0 * (attempt + 1))
                    continue
                # Never the body: it holds the code.
                log.error(
                    "sending mail failed",
                    extra={"mail_subject": message["Subject"], "error": repr(exc)},
                )
                return

    async def stop(self) -> None:
        """Give queued mail a bounded chance to go out, then stop the worker."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), DRAIN_SECONDS)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def reset_code_message(sender: str, recipient: str, code: str, ttl_minutes: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = "Código de recuperación de contraseña"
    message.set_content(
        f"Tu código de recuperación es: {code}\n\n"
        f"Vence en {ttl_minutes} minutos y sólo sirve el último código que pediste.\n"
        "Si no pediste restablecer tu contraseña, ignora este mensaje.\n"
    )
    return message
