"""The delivery worker: claims due deliveries, POSTs them signed, records the outcome.

- Claims are leased in the database (repository.claim_due, `FOR UPDATE SKIP LOCKED`): replicas
  share the work, and a process killed mid-attempt loses nothing; its deliveries are due again
  when their lease ends (timeout + margin).
- Concurrency is bounded in total and per subscription, so a receiver that hangs holds only its
  own slots, each for at most the timeout, and never delays the others.
- Each round also claims a bounded number of deliveries ahead of the free slots, queued here per
  subscription: a slot that frees starts the next one at once. A queued delivery whose lease
  could end before its attempt would is given back (due again at once) instead of sent late.
- The consumer of the same process writes new deliveries already leased to this worker, as many
  as it has room for (`room`), and hands them over after its commit (`take`): no claim needed.
  A round claims only when something may be due that it does not hold: when woken (`wake`:
  deliveries written unleased, a redelivery, a re-enabled subscription), when its last claim
  found some (more may wait), or when `poll_seconds` passed (other processes' expired leases,
  retries coming due). A round woken by finished attempts only records them.
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
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from services.webhooks import repository
from services.webhooks.events import webhook_disabled
from services.webhooks.settings import WebhooksSettings
from services.webhooks.signing import signature_header, signing_key
from services.webhooks.tables import outbox
from services.webhooks.targets import GuardedResolver, TargetRefused, check_literal
from stockmanager.db import Database
from stockmanager.events import write_event
from stockmanager.events.relay import OutboxRelay

log = logging.getLogger("stockmanager.webhooks")

K = TypeVar("K")
V = TypeVar("V")

USER_AGENT = "StockManager-Webhooks/1"

ATTEMPTS = MetricCounter(
    "stockmanager_webhook_attempts", "Delivery attempts made, by outcome", ["outcome"]
)
GIVEN_BACK = MetricCounter(
    "stockmanager_webhook_claims_given_back",
    "Deliveries claimed ahead and given back unsent (their lease would have ended first)",
)
HANDED_OVER = MetricCounter(
    "stockmanager_webhook_deliveries_handed_over",
    "Deliveries the consumer wrote leased to its own process's worker (sent without a claim)",
)
IN_FLIGHT = Gauge("stockmanager_webhook_attempts_in_flight", "Delivery attempts in flight")
QUEUED = Gauge("stockmanager_webhook_claimed_ahead", "Deliveries claimed ahead, waiting for a slot")
# Scraped: deliveries waiting past their due time unclaimed mean the workers cannot keep up or
# are down (deploy/k8s/components/monitoring alerts on it).
OVERDUE_AFTER_SECONDS = 60.0
OVERDUE = Gauge(
    "stockmanager_webhook_deliveries_overdue",
    "Pending deliveries of active subscriptions due for more than a minute and not claimed",
)
PRUNED = MetricCounter(
    "stockmanager_webhook_log_pruned", "Finished deliveries deleted from the log (retention)"
)
# Log cleanup: rows per statement (short transactions; replicas skip each other's rows), and
# statements per cleanup (whatever is left goes at the next one).
PRUNE_BATCH = 5000
PRUNE_BATCHES = 20
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


@dataclass(frozen=True, slots=True)
class Claimed:
    row: Any  # repository.claim_due's row
    lease_ends: float  # time.monotonic() when its lease ends (a little before, in fact)


def retry_delay(settings: WebhooksSettings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped, then jittered to
    between half and all of it (so receivers coming back are not hit by every retry at once)."""
    exponent = min(max(attempts - 1, 0), 40)
    delay: float = min(
        settings.webhooks_retry_max_delay_seconds,
        settings.webhooks_retry_base_seconds * float(2**exponent),
    )
    return delay / 2 + random.uniform(0, delay / 2)


async def measure_overdue(db: Database) -> None:
    """Set the overdue gauge (the service's /metrics calls it at each scrape)."""
    async with db.connect() as conn:
        OVERDUE.set(await repository.count_overdue(conn, late_seconds=OVERDUE_AFTER_SECONDS))


# Per-process memos (decrypted keys, parsed URLs, IP-literal verdicts) are emptied beyond this
# many entries rather than grow with every subscription a long-lived process has seen.
MEMO_LIMIT = 10_000


def _remembered(memo: dict[K, V], key: K, compute: Callable[[K], V]) -> V:
    """`compute(key)`, once per key while `memo` holds it."""
    try:
        return memo[key]
    except KeyError:
        pass
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    value = memo[key] = compute(key)
    return value


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
        self._pruner: asyncio.Task[None] | None = None
        self._in_flight: dict[asyncio.Task[Outcome], int] = {}  # attempt -> subscription id
        self._queued: dict[int, deque[Claimed]] = {}  # claimed ahead, per subscription
        self._released: list[int] = []  # claimed, never attempted: given back next round
        self._claim_wanted = True  # something may be due that this worker does not hold
        self._claimed_at = 0.0  # time.monotonic() of the last claim
        self._done: list[Outcome] = []
        self._keys: dict[str, bytes] = {}  # encrypted secret -> its HMAC key
        self._urls: dict[str, URL] = {}
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
        IN_FLIGHT.set_function(lambda: len(self._in_flight))
        QUEUED.set_function(lambda: sum(len(queue) for queue in self._queued.values()))
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.run(), name="webhook-delivery")
        self._pruner = loop.create_task(self._prune_forever(), name="webhook-log-retention")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.cancel()
        if task is not None:
            await asyncio.wait({task}, timeout=5.0)
            task.cancel()
        for attempt in list(self._in_flight):
            attempt.cancel()  # their leases expire and another process retries them
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=2.0)
        await self._give_back_queued()
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        """New deliveries may be due (the consumer committed some it did not lease to this
        worker; an admin asked for one): the next round claims."""
        self._claim_wanted = True
        self._wake.set()

    @property
    def lease_seconds(self) -> float:
        return self.settings.webhooks_lease_seconds

    def room(self) -> tuple[Counter[int], int, int]:
        """What a claim made now could take: (deliveries held per subscription, the limit per
        subscription, free room in all)."""
        settings = self.settings
        held = Counter(self._in_flight.values())
        held.update({sub: len(q) for sub, q in self._queued.items()})
        total = settings.webhooks_max_in_flight + settings.webhooks_claim_ahead - held.total()
        per_subscription = (
            settings.webhooks_max_in_flight_per_subscription
            + settings.webhooks_claim_ahead_per_subscription
        )
        if self._stopping or self._task is None:
            total = 0  # nobody would send them: left due for any worker
        return held, per_subscription, total

    def take(self, rows: Sequence[Any], lease_ends: float) -> None:
        """Deliveries leased to this worker elsewhere (the consumer's fan-out, committed), whose
        leases end at `lease_ends` (time.monotonic(), a little early): queued and started as a
        claim's are. Stopping, it leaves them: their leases end and any worker sends them."""
        if self._stopping:
            return
        HANDED_OVER.inc(len(rows))
        for row in rows:
            self._queued.setdefault(int(row.subscription_id), deque()).append(
                Claimed(row, lease_ends)
            )
        self._dispatch()

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
        """One transaction: record finished attempts, give back what waited too long, claim
        due deliveries for the free slots and the queue behind them. True if the claim took
        as many as it could hold (more may be due)."""
        self._expire_queued()
        done, self._done = self._done, []
        released, self._released = self._released, []
        held, per_subscription, room = self.room()
        # Given-back deliveries are due at once: claim them again (here or elsewhere).
        claim = room > 0 and (
            self._claim_wanted
            or bool(released)
            or time.monotonic() - self._claimed_at >= self.settings.webhooks_poll_seconds
        )
        if not done and not released and not claim:
            return False
        lease = self.lease_seconds
        disabled = False
        # Taken before the transaction starts, so before the database's now(), from which the
        # lease counts: this process's idea of the lease's end is never the later one.
        claimed_at = time.monotonic()
        claim_wanted, self._claim_wanted = self._claim_wanted, False
        try:
            async with self.db.transaction() as conn:
                if done:
                    disabled = await self._record(conn, done)
                if released:
                    await repository.release(conn, released)
                rows = (
                    await repository.claim_due(
                        conn,
                        total=room,
                        per_subscription=per_subscription,
                        busy=held,
                        lease_seconds=lease,
                    )
                    if claim
                    else []
                )
        except BaseException:
            self._done = done + self._done  # recorded on the next round (leases are long)
            self._released = released + self._released
            self._claim_wanted |= claim_wanted
            raise
        if claim:
            self._claimed_at = claimed_at
            # A claim that found nothing proves nothing more is due (until time passes or
            # something wakes the worker); one that found some may have left more.
            self._claim_wanted |= bool(rows)
        GIVEN_BACK.inc(len(released))
        if disabled and self.relay is not None:
            self.relay.poke()
        self._log_failures(done)
        # The lease was set by the database after `claimed_at`: ending it here at
        # `claimed_at + lease` errs on the early side.
        if rows and self._queued:
            # Only if a round came later than a lease's end could a claim take a delivery
            # still queued here; the fresh claim replaces the stale copy.
            again = {int(row.id) for row in rows}
            for queue in self._queued.values():
                for stale in [c for c in queue if int(c.row.id) in again]:
                    queue.remove(stale)
        for row in rows:
            queue = self._queued.setdefault(int(row.subscription_id), deque())
            queue.append(Claimed(row, claimed_at + lease))
        self._dispatch()
        return claim and len(rows) >= room

    def _sendable(self, claimed: Claimed) -> bool:
        # Sent only if the attempt, timeout included, ends inside the lease (so a queued
        # delivery waits at most the lease margin): otherwise another process could claim and
        # send it at the same time.
        return time.monotonic() + self.settings.webhooks_timeout_seconds < claimed.lease_ends

    def _expire_queued(self) -> None:
        """Queued deliveries that could no longer be sent inside their lease are given back
        (before the lease ends, so that no claim, this process's included, takes them twice)."""
        for subscription_id, queue in list(self._queued.items()):
            # In claim order, so in lease order: the expiring ones are at the front.
            while queue and not self._sendable(queue[0]):
                self._released.append(int(queue.popleft().row.id))
            if not queue:
                del self._queued[subscription_id]

    def _dispatch(self) -> None:
        """Start queued deliveries while there are free slots, in all and per subscription."""
        settings = self.settings
        flying = Counter(self._in_flight.values())
        for subscription_id, queue in list(self._queued.items()):
            while (
                queue
                and len(self._in_flight) < settings.webhooks_max_in_flight
                and flying[subscription_id] < settings.webhooks_max_in_flight_per_subscription
            ):
                if self._start(queue.popleft()):
                    flying[subscription_id] += 1
            if not queue:
                del self._queued[subscription_id]
            if len(self._in_flight) >= settings.webhooks_max_in_flight:
                return

    def _start(self, claimed: Claimed) -> bool:
        """Send a queued delivery (True), or give it back if its lease is too short (False)."""
        row = claimed.row
        if not self._sendable(claimed):
            self._released.append(int(row.id))
            self._wake.set()
            return False
        attempt = asyncio.get_running_loop().create_task(self._attempt(row))
        self._in_flight[attempt] = int(row.subscription_id)
        attempt.add_done_callback(self._finished)
        return True

    def _finished(self, attempt: asyncio.Task[Outcome]) -> None:
        self._in_flight.pop(attempt, None)
        if not attempt.cancelled() and attempt.exception() is None:
            outcome = attempt.result()
            ATTEMPTS.labels("succeeded" if outcome.ok else "failed").inc()
            self._done.append(outcome)
        if not self._stopping:
            self._dispatch()  # the freed slot takes the next queued delivery now
        self._wake.set()

    async def _give_back_queued(self) -> None:
        """On a clean stop: what was claimed ahead and never attempted is due again at once
        (after a crash, its lease ends instead)."""
        ids = self._released + [int(c.row.id) for q in self._queued.values() for c in q]
        self._queued.clear()
        self._released = []
        if not ids:
            return
        try:
            async with asyncio.timeout(2.0), self.db.transaction() as conn:
                await repository.release(conn, ids)
        except (SQLAlchemyError, OSError, TimeoutError):
            log.warning("could not give back %d claimed deliveries (leases end)", len(ids))

    # --- the log's retention ------------------------------------------------------------------

    async def _prune_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.webhooks_log_cleanup_interval_seconds)
            try:
                await self.prune_log()
            except (SQLAlchemyError, OSError) as exc:
                log.warning(
                    "webhook log cleanup failed, retrying later", extra={"error": repr(exc)}
                )

    async def prune_log(self) -> int:
        """Delete finished deliveries past the retention period; how many were deleted."""
        retention_days = self.settings.webhooks_log_retention_days
        if retention_days <= 0:
            return 0
        age = retention_days * 86400
        async with self.db.connect() as conn:
            if not await repository.oldest_is_older_than(conn, age):
                return 0
        deleted = 0
        for _ in range(PRUNE_BATCHES):
            async with self.db.transaction() as conn:
                batch = await repository.prune_log(conn, age_seconds=age, limit=PRUNE_BATCH)
            deleted += batch
            PRUNED.inc(batch)
            if batch < PRUNE_BATCH:
                break
        # Then the bodies no delivery refers to any more (those just pruned, and those of
        # deleted subscriptions).
        for _ in range(PRUNE_BATCHES):
            async with self.db.transaction() as conn:
                batch = await repository.prune_payloads(conn, age_seconds=age, limit=PRUNE_BATCH)
            if batch < PRUNE_BATCH:
                break
        return deleted

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
                self._url(row.url), data=body, headers=headers, allow_redirects=False
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
        now = time.time()
        keys = [self._key(row.secret_encrypted)]
        expires = row.previous_secret_expires_at
        if row.previous_secret_encrypted and expires is not None and expires.timestamp() > now:
            keys.append(self._key(row.previous_secret_encrypted))
        message_id = str(row.event_id)  # the payload's `id`
        timestamp = int(now)
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # Instead of aiohttp's defaults (gzip, deflate): answers are only excerpted for the
            # log, readable only uncompressed. (Set here, not as skip_auto_headers, which
            # costs aiohttp more work per request than the defaults it skips.)
            "accept": "*/*",
            "accept-encoding": "identity",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(keys, message_id, timestamp, body),
        }

    def _key(self, token: str) -> bytes:
        """The HMAC key of an encrypted secret (decrypted once per process, then kept)."""
        return _remembered(
            self._keys, token, lambda t: signing_key(self.cipher.decrypt(t.encode()).decode())
        )

    def _url(self, url: str) -> URL:
        # Parsed once per subscription URL, not at every request.
        return _remembered(self._urls, url, URL)

    def _check_literal(self, url: str) -> None:
        # aiohttp connects to an IP literal without asking the resolver: check it here. A
        # literal's verdict involves no DNS and never changes, so it is kept per URL.
        refusal = _remembered(self._literals, url, self._literal_refusal)
        if refusal:
            raise TargetRefused(refusal)

    def _literal_refusal(self, url: str) -> str:
        """Why `url`'s IP literal is refused ("": it is not, or the host is a name)."""
        try:
            check_literal(
                urlsplit(url).hostname or "",
                allow_private=self.settings.webhooks_allow_private_targets,
            )
        except TargetRefused as exc:
            return str(exc)
        return ""

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
