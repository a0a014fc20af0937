"""The delivery worker: claims due deliveries, POSTs them signed, records the outcome.

- Claims are leased in the database (repository.claim_due, `FOR UPDATE SKIP LOCKED`): replicas
  share the work, and a process killed mid-attempt loses nothing; its deliveries are due again
  when their lease ends (timeout + margin).
- Concurrency is bounded in total and per subscription, so a receiver that hangs holds only its
  own slots, each for at most the timeout, and never delays the others.
- Requests go through `GuardedResolver` (targets.py): the addresses checked are the ones
  connected to. No redirects are followed and at most `max_response_bytes` of an answer is read.
- A 2xx answer is a success; anything else (another status, a timeout, a refused or failed
  connection) is retried with exponential backoff and jitter until the delivery's retry window
  ends. Failures in a row are counted per subscription, which is disabled (and the admins told,
  through a `webhook.disabled` event) once it keeps failing.
- Outcomes are written in batches, in the same transaction as the next claim (one per round).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.fernet import Fernet, InvalidToken

from services.webhooks import repository
from services.webhooks.events import webhook_disabled
from services.webhooks.settings import WebhooksSettings
from services.webhooks.signing import signature_header
from services.webhooks.tables import outbox
from services.webhooks.targets import GuardedResolver, TargetRefused, check_literal
from stockmanager.db import Database
from stockmanager.events import write_event
from stockmanager.events.relay import OutboxRelay

log = logging.getLogger("stockmanager.webhooks")

USER_AGENT = "StockManager-Webhooks/1"
RESPONSE_EXCERPT = 500
ERROR_MAX = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    subscription_id: int
    ok: bool
    status: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    attempts: int
    retry_until: datetime


def retry_delay(settings: WebhooksSettings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped, then jittered to
    between half and all of it (so receivers coming back are not hit by every retry at once)."""
    exponent = min(max(attempts - 1, 0), 40)
    delay: float = min(
        settings.webhooks_retry_max_delay_seconds,
        settings.webhooks_retry_base_seconds * float(2**exponent),
    )
    return delay / 2 + random.uniform(0, delay / 2)


class DeliveryWorker:
    def __init__(
        self,
        settings: WebhooksSettings,
        db: Database,
        cipher: Fernet,
        relay: OutboxRelay | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.cipher = cipher
        self.relay = relay
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[asyncio.Task[Outcome], int] = {}
        self._done: list[Outcome] = []
        self._secrets: dict[str, str] = {}
        self._literals: dict[str, str] = {}  # url -> why its IP literal is refused ("": it is not)
        self._session: aiohttp.ClientSession | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=self.settings.webhooks_allow_private_targets),
            use_dns_cache=False,  # every new connection is checked again
            limit=self.settings.webhooks_max_in_flight,
            limit_per_host=self.settings.webhooks_max_in_flight_per_subscription * 4,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # never through an environment proxy (it would resolve for us)
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=self.settings.webhooks_timeout_seconds),
        )
        self._task = asyncio.get_running_loop().create_task(self.run(), name="webhook-delivery")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait({task}, timeout=5.0)
            task.cancel()
        for attempt in list(self._in_flight):
            attempt.cancel()  # their leases expire and another process retries them
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=2.0)
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        """New deliveries may be due (the consumer committed some; an admin asked for one)."""
        self._wake.set()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            # Cleared before looking for work: a wake-up from here on is never lost.
            self._wake.clear()
            try:
                more = await self._round()
                failures = 0
                if more:
                    continue  # the claim filled every free slot: more may be due
                await self._sleep()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.exception("webhook delivery loop failed, retrying")
                await asyncio.sleep(min(5.0, 0.2 * failures))

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.webhooks_poll_seconds)
        if self._in_flight and self._wake.is_set():
            # Attempts are finishing: let a few more finish so one transaction records them
            # all (and claims their successors), instead of one per delivery.
            await asyncio.sleep(self.settings.webhooks_batch_linger_seconds)

    async def _round(self) -> bool:
        """One transaction: record finished attempts, claim due deliveries for the free slots.
        True if the claim took as many as there were free slots (more may be due)."""
        done, self._done = self._done, []
        free = self.settings.webhooks_max_in_flight - len(self._in_flight)
        if not done and free <= 0:
            return False
        busy = Counter(self._in_flight.values())
        disabled = False
        try:
            async with self.db.transaction() as conn:
                if done:
                    disabled = await self._record(conn, done)
                rows = (
                    await repository.claim_due(
                        conn,
                        total=max(free, 0),
                        per_subscription=self.settings.webhooks_max_in_flight_per_subscription,
                        busy=busy,
                        lease_seconds=self.settings.webhooks_timeout_seconds
                        + self.settings.webhooks_lease_margin_seconds,
                    )
                    if free > 0
                    else []
                )
        except BaseException:
            self._done = done + self._done  # recorded on the next round (leases are long)
            raise
        if disabled and self.relay is not None:
            self.relay.poke()
        self._log_failures(done)
        loop = asyncio.get_running_loop()
        for row in rows:
            attempt = loop.create_task(self._attempt(row))
            self._in_flight[attempt] = int(row.subscription_id)
            attempt.add_done_callback(self._finished)
        return free > 0 and len(rows) >= free

    def _finished(self, attempt: asyncio.Task[Outcome]) -> None:
        self._in_flight.pop(attempt, None)
        if not attempt.cancelled() and attempt.exception() is None:
            self._done.append(attempt.result())
        self._wake.set()

    # --- one attempt --------------------------------------------------------------------------

    async def _attempt(self, row: Any) -> Outcome:
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            body = row.body.encode()  # the stored payload's JSON text, sent as is
            headers = self._headers(row, body)
            self._check_literal(row.url)
            assert self._session is not None
            async with self._session.post(
                row.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.content.read(self.settings.webhooks_max_response_bytes)
                excerpt = raw[: RESPONSE_EXCERPT * 4].decode("utf-8", "replace")[:RESPONSE_EXCERPT]
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (
                    " (redirects are not followed)" if 300 <= status < 400 else ""
                )
        except TimeoutError:
            error = f"timeout after {self.settings.webhooks_timeout_seconds:g} s"
        except TargetRefused as exc:
            error = str(exc)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
        except InvalidToken:
            error = "the signing secret cannot be decrypted (was the key changed?)"
        return Outcome(
            delivery_id=int(row.id),
            subscription_id=int(row.subscription_id),
            ok=error is None,
            status=status,
            latency_ms=int((time.monotonic() - started) * 1000),
            excerpt=excerpt,
            error=error,
            attempts=int(row.attempts),
            retry_until=row.retry_until,
        )

    def _headers(self, row: Any, body: bytes) -> dict[str, str]:
        now = datetime.now(UTC)
        in_use = [self._secret(row.secret_encrypted)]
        expires = row.previous_secret_expires_at
        if row.previous_secret_encrypted and expires is not None and expires > now:
            in_use.append(self._secret(row.previous_secret_encrypted))
        message_id = str(row.event_id)  # the payload's `id`
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(in_use, message_id, now, body),
        }

    def _secret(self, token: str) -> str:
        secret = self._secrets.get(token)
        if secret is None:
            secret = self.cipher.decrypt(token.encode()).decode()
            if len(self._secrets) > 10_000:
                self._secrets.clear()
            self._secrets[token] = secret
        return secret

    def _check_literal(self, url: str) -> None:
        # aiohttp connects to an IP literal without asking the resolver: check it here. A
        # literal's verdict involves no DNS and never changes, so it is kept per URL.
        refusal = self._literals.get(url)
        if refusal is None:
            try:
                check_literal(
                    urlsplit(url).hostname or "",
                    allow_private=self.settings.webhooks_allow_private_targets,
                )
                refusal = ""
            except TargetRefused as exc:
                refusal = str(exc)
            if len(self._literals) > 10_000:
                self._literals.clear()
            self._literals[url] = refusal
        if refusal:
            raise TargetRefused(refusal)

    # --- outcomes -----------------------------------------------------------------------------

    async def _record(self, conn: Any, done: list[Outcome]) -> bool:
        """Write the outcomes; True if a subscription was disabled (an event to publish)."""
        successes = [o for o in done if o.ok]
        await repository.record_successes(
            conn,
            [
                (o.delivery_id, o.subscription_id, o.status or 0, o.latency_ms, o.excerpt or "")
                for o in successes
            ],
        )
        disabled = False
        for outcome in done:
            if not outcome.ok:
                disabled |= await self._record_failure(conn, outcome)
        return disabled

    def _log_failures(self, done: list[Outcome]) -> None:
        for outcome in done:
            if not outcome.ok:
                log.info(
                    "webhook delivery failed",
                    extra={
                        "delivery_id": outcome.delivery_id,
                        "subscription_id": outcome.subscription_id,
                        "attempt": outcome.attempts,
                        "error": outcome.error,
                    },
                )

    async def _record_failure(self, conn: Any, outcome: Outcome) -> bool:
        settings = self.settings
        due = datetime.now(UTC) + timedelta(seconds=retry_delay(settings, outcome.attempts))
        await repository.record_failure(
            conn,
            outcome.delivery_id,
            next_attempt_at=due if due <= outcome.retry_until else None,
            response_status=outcome.status,
            latency_ms=outcome.latency_ms,
            response_body=outcome.excerpt,
            error=outcome.error or "error",
        )
        row = await repository.count_failure(conn, outcome.subscription_id)
        if (
            row is None
            or not row.active
            or row.consecutive_failures < settings.webhooks_disable_after_failures
            or row.failing_for.total_seconds() < settings.webhooks_disable_after_seconds
        ):
            return False
        reason = (
            f"{row.consecutive_failures} entregas fallidas seguidas desde "
            f"{row.failing_since.isoformat()}; última: {outcome.error}"
        )[:ERROR_MAX]
        after = await repository.disable_failing(conn, outcome.subscription_id, reason)
        if after is None:
            return False
        await write_event(conn, outbox, webhook_disabled(row, after, outcome.error))
        log.warning(
            "webhook subscription disabled after repeated failures",
            extra={"subscription_id": outcome.subscription_id},
        )
        return True
