"""A short-lived in-process copy of the sessions this gateway process has just read from Redis.

Every request used to cost one Redis GETEX (a round trip, and a fifth of the gateway's CPU per
proxied request). A session found here is used without asking Redis; an entry lives at most
`ttl` seconds (`STOCKMANAGER_SESSION_CACHE_SECONDS`, at most 1 s), so busy sessions still refresh
their idle timer in Redis about once per `ttl`.

Kept correct by invalidations, not by expiry alone. Every change that ends or alters a session
(logout, a user disabled or deleted, a password changed or reset, a role or name changed; see
`gateway.sessions.SessionStore`) is written to Redis together with a PUBLISH on `CHANNEL`, in the
same MULTI, and dropped from the local cache of the process that made it before it answers.
Every gateway process subscribes to `CHANNEL` and drops what a message names: a revocation made
on any replica ends the session everywhere as soon as the message arrives (milliseconds), not
after `ttl`.

The races, and why they are safe:
- A request reads a session from Redis just before it is revoked, and its reply arrives after
  the invalidation: `put()` refuses an entry read before the latest invalidation (the
  `generation` taken before the read has moved on), so the revoked session is never cached.
- Messages lost while the subscription is down: the cache is used only while subscribed (the
  subscription's confirmation turns it on, and empties it, also after redis-py re-subscribed by
  itself), and emptied when the subscription fails. A connection that dies silently can lose
  messages unnoticed; then `ttl` bounds how long a revoked session is still accepted here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from redis.asyncio import Redis

if TYPE_CHECKING:
    from gateway.sessions import Session

log = logging.getLogger("gateway.sessions")

CHANNEL = "sm:session-invalidations"
# Message bodies: one session (its key, the SHA-256 of the cookie) or all of a user's sessions.
KEY_MESSAGE = "k:"
USER_MESSAGE = "u:"


def key_message(key: str) -> str:
    return KEY_MESSAGE + key


def user_message(user_id: int) -> str:
    return f"{USER_MESSAGE}{user_id}"


class SessionCache:
    def __init__(self, ttl: float, *, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Session, float]] = {}
        # Moves on at every invalidation: an entry read from Redis before it is not stored.
        self.generation = 0
        # True only while the invalidation channel is subscribed (see the module docstring).
        self.listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.listening

    def get(self, key: str) -> Session | None:
        if not self.enabled:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        session, expires = found
        if time.monotonic() >= expires:
            self._entries.pop(key, None)
            return None
        return session

    def put(self, key: str, session: Session, generation: int) -> None:
        """Store a session read from Redis when no invalidation came since `generation`."""
        if not self.enabled or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            # Bounded memory; the entries are a second old at most, refilling costs one read each.
            self._entries.clear()
        self._entries[key] = (session, time.monotonic() + self.ttl)

    def drop_key(self, key: str) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def drop_user(self, user_id: int) -> None:
        self.generation += 1
        for key in [k for k, (s, _) in self._entries.items() if s.user_id == user_id]:
            del self._entries[key]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def apply(self, message: bytes | str) -> None:
        """An invalidation message from `CHANNEL`; anything unreadable empties the cache."""
        text = message.decode() if isinstance(message, bytes) else message
        if text.startswith(KEY_MESSAGE):
            self.drop_key(text[len(KEY_MESSAGE) :])
            return
        if text.startswith(USER_MESSAGE) and text[len(USER_MESSAGE) :].isdigit():
            self.drop_user(int(text[len(USER_MESSAGE) :]))
            return
        self.clear()

    def start(self, redis: Redis) -> None:
        if self.ttl > 0:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(redis), name="session-invalidations"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.listening = False
        self.clear()
        if task is not None:
            task.cancel()
            # redis-py can swallow a cancellation mid-read: never wait on it unboundedly.
            await asyncio.wait({task}, timeout=2.0)

    async def _listen(self, redis: Redis) -> None:
        failures = 0
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        kind = message.get("type")
                        if kind == "subscribe":
                            # First subscription or a re-subscription after redis-py reconnected
                            # by itself: messages may have been missed meanwhile.
                            self.clear()
                            self.listening = True
                            failures = 0
                        elif kind == "message":
                            self.apply(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: no cache until subscribed again
                if failures == 0:
                    log.warning(
                        "session invalidations unavailable, not caching sessions",
                        extra={"error": repr(exc)},
                    )
                failures += 1
            finally:
                self.listening = False
                self.clear()
            await asyncio.sleep(min(2.0, 0.1 * 2**failures))
