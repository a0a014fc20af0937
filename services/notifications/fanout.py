"""Live fan-out of "this user's notifications changed" to every open SSE stream, on every replica.

Writers (the event consumer and the REST endpoints) publish the affected user ids on one Redis
pub/sub channel *after* their transaction commits. Every process subscribes to that channel once
(one Redis connection per process, never one per stream) and dispatches to its local streams:

- streams register a `Subscription` under their user id;
- a message for a user with local streams starts (or re-arms) one refresh task for that user,
  which reads the user's unread list once and hands the same rendered `update` frame to all of
  that user's local streams, however many tabs there are;
- a subscription only keeps the latest frame, so a slow client never builds a queue.

If the pub/sub connection drops, every local user is refreshed after re-subscribing, so an
update published while the connection was down is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import orjson
from prometheus_client import Counter, Gauge
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("stockmanager.notifications.fanout")

# Loads the rendered `update` frame of a user (their newest unread notifications and count).
FrameLoader = Callable[[int], Awaitable[bytes]]

SSE_STREAMS = Gauge("stockmanager_notifications_sse_streams", "Open SSE streams in this process")
SSE_USERS = Gauge(
    "stockmanager_notifications_sse_users", "Users with at least one open SSE stream here"
)
SSE_REFRESH_TASKS = Gauge(
    "stockmanager_notifications_sse_refresh_tasks", "Per-user refresh tasks running"
)
SSE_OPENED = Counter("stockmanager_notifications_sse_streams_opened", "SSE streams opened")
SSE_CLOSED = Counter("stockmanager_notifications_sse_streams_closed", "SSE streams closed")
FANOUT_MESSAGES = Counter(
    "stockmanager_notifications_fanout_messages", "Change messages received from pub/sub"
)
FANOUT_SUBSCRIBED = Gauge(
    "stockmanager_notifications_fanout_subscribed", "1 while the pub/sub subscription is live"
)


@dataclass(eq=False)
class Subscription:
    """One open stream. Holds only the latest frame to send."""

    user_id: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    frame: bytes | None = None
    closed: bool = False

    def deliver(self, frame: bytes) -> None:
        self.frame = frame
        self.changed.set()

    def take(self) -> bytes | None:
        self.changed.clear()
        frame, self.frame = self.frame, None
        return frame

    def close(self) -> None:
        self.closed = True
        self.changed.set()


@dataclass(eq=False)
class _UserStreams:
    subscriptions: set[Subscription] = field(default_factory=set)
    refresh: asyncio.Task[None] | None = None
    dirty: bool = False


class NotificationHub:
    def __init__(
        self,
        redis_url: str,
        channel: str,
        load_frame: FrameLoader,
        *,
        publish_connections: int = 16,
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.load_frame = load_frame
        # A bounded pool that waits for a free connection: a burst of writes must delay its
        # publishes a little, never drop them (redis-py's default pool raises past 100).
        self.publisher = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                redis_url,
                max_connections=publish_connections,
                timeout=5,
                socket_timeout=5,
                socket_connect_timeout=3,
            )
        )
        self._users: dict[int, _UserStreams] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscriber: Redis | None = None
        self._ready = asyncio.Event()
        self.closing = False
        SSE_STREAMS.set_function(lambda: self.stream_count)
        SSE_USERS.set_function(lambda: len(self._users))
        SSE_REFRESH_TASKS.set_function(lambda: self.refresh_task_count)

    # --- counters (also exported in /metrics) -------------------------------------------------

    @property
    def stream_count(self) -> int:
        return sum(len(entry.subscriptions) for entry in self._users.values())

    @property
    def refresh_task_count(self) -> int:
        return sum(1 for entry in self._users.values() if entry.refresh is not None)

    def stats(self) -> dict[str, int]:
        return {
            "streams": self.stream_count,
            "users": len(self._users),
            "refresh_tasks": self.refresh_task_count,
        }

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, wait: float = 5.0) -> None:
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name="notifications-fanout"
        )
        # Ready before serving, so a stream opened right away does not miss a change.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def stop(self) -> None:
        self.closing = True
        for entry in list(self._users.values()):
            for subscription in list(entry.subscriptions):
                subscription.close()
        tasks = [t for t in [self._listener, *(e.refresh for e in self._users.values())] if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.publisher.aclose()

    # --- streams ------------------------------------------------------------------------------

    def subscribe(self, user_id: int) -> Subscription:
        subscription = Subscription(user_id)
        self._users.setdefault(user_id, _UserStreams()).subscriptions.add(subscription)
        SSE_OPENED.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        entry = self._users.get(subscription.user_id)
        if entry is None or subscription not in entry.subscriptions:
            return
        entry.subscriptions.discard(subscription)
        subscription.closed = True
        SSE_CLOSED.inc()
        if not entry.subscriptions:
            if entry.refresh is not None:
                entry.refresh.cancel()  # its `finally` drops the entry
            else:
                del self._users[subscription.user_id]

    # --- publishing ---------------------------------------------------------------------------

    async def publish(self, user_ids: Iterable[int]) -> None:
        """Tell every replica that these users' notifications changed. Call after commit."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        try:
            await self.publisher.publish(self.channel, orjson.dumps(ids))
        except Exception as exc:  # noqa: BLE001 - the change is committed; only liveness suffers
            log.warning("could not publish notification change", extra={"error": repr(exc)})

    # --- dispatch -----------------------------------------------------------------------------

    def changed(self, user_ids: Iterable[int]) -> None:
        """Local dispatch: refresh the streams of these users held by this process."""
        for user_id in user_ids:
            entry = self._users.get(user_id)
            if entry is None or self.closing:
                continue
            entry.dirty = True
            if entry.refresh is None:
                entry.refresh = asyncio.get_running_loop().create_task(
                    self._refresh(user_id, entry), name=f"notifications-refresh-{user_id}"
                )

    async def _refresh(self, user_id: int, entry: _UserStreams) -> None:
        failures = 0
        try:
            while entry.dirty and entry.subscriptions:
                entry.dirty = False
                try:
                    frame = await self.load_frame(user_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - DB hiccup: retry while anyone listens
                    failures += 1
                    entry.dirty = True
                    if failures in (1, 10):
                        log.warning(
                            "refresh failed", extra={"user_id": user_id, "error": repr(exc)}
                        )
                    await asyncio.sleep(min(5.0, 0.2 * failures))
                    continue
                failures = 0
                for subscription in entry.subscriptions:
                    subscription.deliver(frame)
        finally:
            entry.refresh = None
            if not entry.subscriptions and self._users.get(user_id) is entry:
                del self._users[user_id]

    async def _listen(self) -> None:
        failures = 0
        while True:
            subscriber = Redis.from_url(
                self.redis_url,
                socket_connect_timeout=3,
                health_check_interval=15,
                # No silent reconnects inside redis-py: a dropped connection must surface here,
                # so that every local stream is refreshed after re-subscribing.
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                FANOUT_SUBSCRIBED.set(1)
                if failures:
                    # Messages published while we were away are gone: refresh everyone here.
                    self.changed(list(self._users))
                failures = 0
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    FANOUT_MESSAGES.inc()
                    try:
                        ids = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(ids, list):
                        continue
                    self.changed(i for i in ids if isinstance(i, int))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis unavailable: resubscribe with backoff
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("pub/sub listener failed", extra={"error": repr(exc)})
                await asyncio.sleep(min(5.0, 0.2 * failures))
            finally:
                FANOUT_SUBSCRIBED.set(0)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await subscriber.aclose()
