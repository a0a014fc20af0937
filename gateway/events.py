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


class EventPublisher:
    def __init__(self, redis: Redis, stream: str, maxlen: int, queue_size: int = 10_000) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def publish(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            log.error("event queue full, event dropped", extra={"type": event.type})

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
            await self._send([self.queue.get_nowait()])

    async def _run(self) -> None:
        while not self._stopping:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 200:
                batch.append(self.queue.get_nowait())
            for attempt in range(20):
                try:
                    await self._send(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - Redis down: retry, then give up
                    if attempt == 0:
                        log.warning("publishing gateway events failed", extra={"error": repr(exc)})
                    await asyncio.sleep(min(3.0, 0.2 * (attempt + 1)))
            else:
                log.error("gateway events dropped after retries", extra={"count": len(batch)})

    async def _send(self, batch: list[Event]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(
                    self.stream,
                    {"event": event.to_json(), "type": event.type},
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
