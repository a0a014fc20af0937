"""The gateway's own events (logins, logouts, refused requests) and the user events it consumes.

The gateway has no database and so no outbox: it publishes straight to the stream from a small
background queue, so a slow Redis never adds latency to a request. The consumer (group
`gateway`) ends or updates sessions when an account changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.sessions import SessionStore
from stockmanager.contracts.events import UserSnapshot, UserUpdated
from stockmanager.events import Event, EventType

log = logging.getLogger("gateway.events")

SESSION_EVENTS = (
    EventType.USER_UPDATED,
    EventType.USER_DISABLED,
    EventType.USER_PASSWORD_CHANGED,
    EventType.USER_PASSWORD_RESET,
)


EVENTS_DROPPED = Counter(
    "stockmanager_gateway_events_dropped_total",
    "Gateway events dropped instead of published: too_large (over event_max_bytes), "
    "queue_full (publish queue over its count or byte bound), redis (still failing after retries)",
    ["reason"],
)


class EventPublisher:
    """A bounded in-memory queue of serialized events and the task that sends them.

    The queue is bounded by count *and* bytes, and every event by its own size, so a flood of
    refused requests or a Redis outage costs the gateway a fixed amount of memory. Over a bound
    the event is dropped (never waited for: requests must not slow down), counted in
    `stockmanager_gateway_events_dropped_total{reason}` and logged once per burst.
    """

    def __init__(
        self,
        redis: Redis,
        stream: str,
        maxlen: int,
        *,
        queue_size: int = 10_000,
        queue_max_bytes: int = 4 * 1024 * 1024,
        event_max_bytes: int = 2048,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.queue_max_bytes = queue_max_bytes
        self.event_max_bytes = event_max_bytes
        self.queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue(maxsize=queue_size)
        self.queued_bytes = 0
        self._dropping = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def publish(self, event: Event) -> None:
        data = event.to_json()
        if len(data) > self.event_max_bytes:
            self._drop("too_large", event)
        elif self.queue.full() or self.queued_bytes + len(data) > self.queue_max_bytes:
            self._drop("queue_full", event)
        else:
            self.queue.put_nowait((data, event.type))
            self.queued_bytes += len(data)
            self._dropping = False

    def _drop(self, reason: str, event: Event) -> None:
        EVENTS_DROPPED.labels(reason).inc()
        if not self._dropping:  # once per burst: a flood must not flood the log too
            self._dropping = True
            log.error("gateway event dropped", extra={"type": event.type, "reason": reason})

    def _take(self) -> tuple[bytes, str]:
        item = self.queue.get_nowait()
        self.queued_bytes -= len(item[0])
        return item

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gateway-events")

    async def stop(self) -> None:
        # Stop the sender first, then flush what is still queued (bounded in time).
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # redis-py can swallow a cancellation mid-command: never wait on it unboundedly.
            await asyncio.wait({task}, timeout=3.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), timeout=2.0)

    async def _drain(self) -> None:
        while not self.queue.empty():
            await self._send([self._take()])

    async def _run(self) -> None:
        while not self._stopping:
            first = await self.queue.get()
            self.queued_bytes -= len(first[0])
            batch = [first]
            while not self.queue.empty() and len(batch) < 200:
                batch.append(self._take())
            for attempt in range(20):
                try:
                    await self._send(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - Redis down: retry, then give up
                    if attempt == 0:
                        log.warning("publishing gateway events failed", extra={"error": repr(exc)})
                    await asyncio.sleep(min(3.0, 0.2 * (attempt + 1)))
            else:
                EVENTS_DROPPED.labels("redis").inc(len(batch))
                log.error("gateway events dropped after retries", extra={"count": len(batch)})

    async def _send(self, batch: list[tuple[bytes, str]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for data, event_type in batch:
                pipe.xadd(
                    self.stream,
                    {"event": data, "type": event_type},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()


def session_event_handler(sessions: SessionStore) -> Callable[[Event], Awaitable[None]]:
    async def handle(event: Event) -> None:
        user_id = event.entity.get("id")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            return
        if event.type in (
            EventType.USER_DISABLED,
            EventType.USER_PASSWORD_CHANGED,
            EventType.USER_PASSWORD_RESET,
        ):
            await sessions.revoke_user(user_id)
            return
        try:
            change = event.data_as(UserUpdated)
            before, after = event.before_as(UserSnapshot), event.after_as(UserSnapshot)
        except ValidationError:
            # We cannot tell what changed: ending the sessions is the safe answer (the user
            # logs in again and gets the current role and name).
            log.warning(
                "user.updated payload does not match, sessions revoked",
                extra={"event_id": event.id},
            )
            await sessions.revoke_user(user_id)
            return
        if after.status == 0 or change.password_changed:
            await sessions.revoke_user(user_id)
            return
        if after.role != before.role:
            await sessions.set_role(user_id, after.role)
        if after.username != before.username:
            await sessions.set_username(user_id, after.username)

    return handle
