"""The consumer loop: a Redis Streams consumer group, at-least-once, idempotent by event id.

For each batch that XREADGROUP returns: open one transaction, record the event ids in
`<schema>.processed_events` with one statement (an id already there means the event was applied
before, so it is skipped), run the handler for the new ones (a `batch_handler` gets them all in
one call, so it can write them with set-based statements), commit, and only then XACK them with
one command. If the batch fails it is rolled back and retried one message at a time, which
isolates a failing event. Events of types the consumer does not want are acknowledged without a
transaction (read from the entry's `type` field when the relay wrote one, so the envelope is not
even decoded). A consumer that dies before acknowledging leaves the message pending;
another consumer (or the same one after a restart) reclaims it with XAUTOCLAIM once it has been
idle for `reclaim_idle_ms`. A message whose handler keeps failing is moved to a dead-letter
stream after `max_attempts` so it cannot block the group forever; one whose payload does not match
its contract (the handler raised `pydantic.ValidationError`) is moved there at once, since
retrying cannot change the payload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from functools import cache
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.db import Database
from stockmanager.events.envelope import Event

log = logging.getLogger("stockmanager.consumer")

Handler = Callable[[AsyncConnection, Event], Awaitable[None]]
# Applies several new events (in stream order) in the caller's transaction; raising rolls the
# whole batch back (the consumer then retries the events one by one, each as a batch of one).
BatchHandler = Callable[[AsyncConnection, list[Event]], Awaitable[None]]
StatelessHandler = Callable[[Event], Awaitable[None]]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        types: Iterable[str] | None = None,
        db: Database | None = None,
        processed: Table | None = None,
        handler: Handler | None = None,
        stateless_handler: StatelessHandler | None = None,
        consumer_name: str | None = None,
        reclaim_idle_ms: int = 30_000,
        batch_size: int = 100,
        block_ms: int = 1000,
        max_attempts: int = 10,
        start_id: str = "0",
        linger_ms: int = 150,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        given = [h for h in (handler, stateless_handler, batch_handler) if h is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of handler, batch_handler or stateless_handler")
        if stateless_handler is None and (db is None or processed is None):
            raise ValueError("a transactional handler needs db and processed table")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.types = frozenset(types) if types is not None else None
        self.db = db
        self.processed = processed
        self.handler = handler
        self.batch_handler = batch_handler
        self.stateless_handler = stateless_handler
        self.consumer_name = consumer_name or default_consumer_name()
        self.reclaim_idle_ms = reclaim_idle_ms
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.max_attempts = max_attempts
        self.start_id = start_id
        # After a short batch, wait this long before reading again so that, under load, events
        # accumulate into batches (one transaction each) instead of waking us one by one. An
        # event after a quiet spell is read at once (XREADGROUP blocks); under load one waits
        # at most this long, well inside the 1 s notifications budget. 150 ms measured ~30 %
        # less consumer CPU per event than 50 ms at 200 sales/s (bench/results/consumers.md).
        # Stateless handlers (session revocation) never linger.
        self.linger = linger_ms / 1000 if stateless_handler is None else 0.0
        self.dead_letter_stream = f"{stream}:dead"
        self._failures: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.processed_total = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"consumer-{self.group}"
        )

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # A driver can swallow a cancellation that lands mid-call (redis-py 8.1 does inside
            # pipelines/commands): the flag ends the loop then, and the bounded wait keeps a
            # shutdown from hanging. Unacknowledged messages stay pending and are reclaimed.
            await asyncio.wait({task}, timeout=5.0)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        failures = 0
        group_ready = False
        while not self._stopping:
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                if loop.time() >= next_reclaim:
                    await self.reclaim_stale()
                    next_reclaim = loop.time() + max(1.0, self.reclaim_idle_ms / 2000)
                response: Any = await self.redis.xreadgroup(
                    self.group,
                    self.consumer_name,
                    {self.stream: ">"},
                    count=self.batch_size,
                    block=self.block_ms,
                )
                read = 0
                for _stream, messages in response or []:
                    if self._stopping:
                        return
                    read += len(messages)
                    await self.process_batch(messages)
                failures = 0
                if 0 < read < self.batch_size and self.linger:
                    await asyncio.sleep(self.linger)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # stream or group deleted (e.g. Redis restarted empty)
                    group_ready = False
                    continue
                failures += 1
                await self._backoff(failures, exc)
            except Exception as exc:  # noqa: BLE001 - Redis/DB unavailable: retry with backoff
                failures += 1
                await self._backoff(failures, exc)

    async def _backoff(self, failures: int, exc: BaseException) -> None:
        if failures in (1, 10) or failures % 100 == 0:
            log.warning(
                "consumer loop failed, retrying",
                extra={"group": self.group, "error": repr(exc)},
            )
        await asyncio.sleep(min(5.0, 0.2 * failures))

    async def reclaim_stale(self) -> int:
        """Take over messages another (dead) consumer read but never acknowledged."""
        reclaimed = 0
        cursor = "0-0"
        while True:
            result: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer_name,
                min_idle_time=self.reclaim_idle_ms,
                start_id=cursor,
                count=self.batch_size,
            )
            cursor, messages = result[0], result[1]
            for message_id, fields in messages:
                if self._stopping:
                    return reclaimed
                if fields is None:  # entry trimmed away while pending
                    await self.redis.xack(self.stream, self.group, message_id)
                    continue
                await self.process(message_id, fields)
                reclaimed += 1
            if cursor in (b"0-0", "0-0") or not messages:
                return reclaimed

    async def process_batch(self, messages: list[tuple[Any, dict[Any, Any]]]) -> None:
        """Apply a batch of messages in one transaction and acknowledge them with one XACK.

        Under load this turns N transactions and N acknowledgements into one of each. If the
        batch fails, it is rolled back whole and retried one message at a time, so a single
        failing event is isolated (and eventually dead-lettered) without holding up the rest.
        """
        ready: list[tuple[Any, dict[Any, Any], Event]] = []
        unwanted: list[Any] = []
        for message_id, fields in messages:
            if self._unwanted_type(fields):
                unwanted.append(message_id)
                continue
            event = _decode(fields)
            if event is None:
                await self.process(message_id, fields)  # dead-letters it
            elif self.types is not None and event.type not in self.types:
                unwanted.append(message_id)
            else:
                ready.append((message_id, fields, event))
        if ready:
            wanted = await self.currently_wanted()
            if wanted is not None:
                unwanted += [
                    message_id for message_id, _, event in ready if event.type not in wanted
                ]
                ready = [entry for entry in ready if entry[2].type in wanted]
        if unwanted:
            await self.redis.xack(self.stream, self.group, *unwanted)
        if len(ready) <= 1 or self.stateless_handler is not None:
            for message_id, fields, _event in ready:
                if self._stopping:
                    return
                await self.process(message_id, fields, interest_checked=True)
            return
        events = [event for _, _, event in ready]
        try:
            applied = await self._apply_in_one_transaction(events)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - isolate the culprit one message at a time
            await self.after_rollback(events)
            for message_id, fields, _event in ready:
                if self._stopping:
                    return
                await self.process(message_id, fields, interest_checked=True)
            return
        await self._after_commit_safely(applied)
        await self.redis.xack(self.stream, self.group, *[m for m, _, _ in ready])
        for message_id, _fields, _event in ready:
            self._failures.pop(_key(message_id), None)
        self.processed_total += len(ready)

    async def currently_wanted(self) -> frozenset[str] | None:
        """The types a handler wants at this moment, among `types` (None: all of them).

        Asked once per batch, after it was read: a consumer whose interest changes at run time
        (webhooks: the types the active subscriptions want) acknowledges the rest without a
        transaction. Asking after the read is what makes it safe: an event published after the
        interest began is read after it began, so the answer already includes it.
        """
        return None

    def _unwanted_type(self, fields: dict[Any, Any]) -> bool:
        """The entry's `type` field (written by the relay) names a type we skip. Entries
        without one are decoded and filtered on the envelope's type."""
        if self.types is None:
            return False
        raw = fields.get(b"type") or fields.get("type")
        if raw is None:
            return False
        kind = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return kind not in self.types

    async def process(
        self, message_id: Any, fields: dict[Any, Any], *, interest_checked: bool = False
    ) -> None:
        """Apply one message. `interest_checked`: its batch already asked currently_wanted()."""
        key = _key(message_id)
        if self._unwanted_type(fields):
            await self.redis.xack(self.stream, self.group, message_id)
            return
        event = _decode(fields)
        if event is None:
            log.error("undecodable event dropped", extra={"message_id": key, "group": self.group})
            await self._dead_letter(key, fields)
            return
        if self.types is not None and event.type not in self.types:
            await self.redis.xack(self.stream, self.group, message_id)
            return
        if not interest_checked:
            wanted = await self.currently_wanted()
            if wanted is not None and event.type not in wanted:
                await self.redis.xack(self.stream, self.group, message_id)
                return
        try:
            await self.apply(event)
        except asyncio.CancelledError:
            raise
        except ValidationError as exc:
            log.error(
                "event payload does not match its contract, dead-lettered",
                extra={
                    "group": self.group,
                    "event_id": event.id,
                    "type": event.type,
                    "error": str(exc),
                },
            )
            await self._dead_letter(key, fields)
            self._failures.pop(key, None)
            return
        except Exception:
            attempts = self._failures.get(key, 0) + 1
            self._failures[key] = attempts
            log.exception(
                "event handler failed",
                extra={
                    "group": self.group,
                    "event_id": event.id,
                    "type": event.type,
                    "attempt": attempts,
                },
            )
            if attempts >= self.max_attempts:
                await self._dead_letter(key, fields)
                self._failures.pop(key, None)
            # Left pending otherwise: reclaimed and retried after reclaim_idle_ms.
            return
        self._failures.pop(key, None)
        await self.redis.xack(self.stream, self.group, message_id)
        self.processed_total += 1

    async def apply(self, event: Event) -> None:
        """Apply one event (in its own transaction unless the handler is stateless)."""
        if self.stateless_handler is not None:
            await self.stateless_handler(event)
            return
        try:
            applied = await self._apply_in_one_transaction([event])
        except BaseException:
            await self.after_rollback([event])
            raise
        await self._after_commit_safely(applied)

    async def _apply_in_one_transaction(self, events: list[Event]) -> list[Event]:
        """Record the ids and run the handler for the events not seen before; commit."""
        assert self.db is not None and self.processed is not None
        async with self.db.transaction() as conn:
            fresh = set(
                await conn.scalars(
                    _claim_statement(self.processed),
                    {"ids": [e.id for e in events], "group": self.group},
                )
            )
            applied: list[Event] = []
            for event in events:
                # `fresh.discard` also drops a duplicate of the same event within the batch.
                if event.id in fresh:
                    fresh.discard(event.id)
                    applied.append(event)
            if self.batch_handler is not None:
                if applied:
                    await self.batch_handler(conn, applied)
            else:
                assert self.handler is not None
                for event in applied:
                    await self.handler(conn, event)
        return applied

    async def after_commit(self, applied: list[Event]) -> None:
        """Hook: runs after the transaction that applied `applied` committed (e.g. push)."""

    async def after_rollback(self, events: list[Event]) -> None:
        """Hook: the transaction that tried `events` rolled back; drop any per-event state."""

    async def _after_commit_safely(self, applied: list[Event]) -> None:
        if not applied:
            return
        try:
            await self.after_commit(applied)
        except Exception:  # the change is committed; only a side effect failed
            log.exception("after-commit hook failed", extra={"group": self.group})

    async def _dead_letter(self, message_id: str, fields: dict[Any, Any]) -> None:
        await self.redis.xadd(
            self.dead_letter_stream,
            {**fields, "group": self.group, "original_id": message_id},
            maxlen=10_000,
            approximate=True,
        )
        await self.redis.xack(self.stream, self.group, message_id)


@cache
def _claim_statement(processed: Table) -> TextClause:
    """Record a batch's event ids for a group; returns the ids that were not there yet.

    One statement whatever the batch size (one array parameter), so it is compiled and
    prepared once, unlike a multi-row VALUES list whose shape changes with every batch size.
    """
    return text(
        f"INSERT INTO {processed.fullname} (event_id, consumer_group)"
        " SELECT unnest(CAST(:ids AS uuid[])), :group"
        " ON CONFLICT DO NOTHING"
        " RETURNING CAST(event_id AS text)"
    )


def _key(message_id: Any) -> str:
    return message_id.decode() if isinstance(message_id, bytes) else str(message_id)


def _decode(fields: dict[Any, Any]) -> Event | None:
    raw = fields.get(b"event") or fields.get("event")
    try:
        return Event.from_json(raw) if raw is not None else None
    except (ValueError, TypeError):
        return None
