"""Moves committed outbox rows to the Redis stream.

Rows are claimed with `FOR UPDATE SKIP LOCKED`, so every replica of a service can run a relay
and they share the work. One statement per batch claims the oldest unpublished rows and marks
them published, returning their JSON as text (sent to Redis as it is, never parsed here); the
transaction commits only after Redis accepted the batch, so a failed publish rolls the marks
back, and a commit that fails after the publish publishes the events again, which consumers
tolerate (they are idempotent on event id).
The relay holds its row locks while it talks to Redis: that is the price of cooperation between
replicas, and it only ever happens on this background task, never on a request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from functools import cache

from redis.asyncio import Redis
from sqlalchemy import Table, TextClause, select, text
from sqlalchemy.sql import func

from stockmanager.db import Database

log = logging.getLogger("stockmanager.relay")

PUBLISHED_RETENTION = timedelta(days=1)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        redis: Redis,
        outbox: Table,
        *,
        stream: str,
        maxlen: int,
        poll_interval: float = 0.5,
        batch_size: int = 200,
        linger: float = 0.025,
    ) -> None:
        self.db = db
        self.redis = redis
        self.outbox = outbox
        self.stream = stream
        self.maxlen = maxlen
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        # After publishing a short batch, wait this long before looking again, so that under
        # load the commits of the next few ms go out as one batch (one transaction, one
        # pipeline) instead of one each; an event after a quiet spell still goes out at once.
        self.linger = linger
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published_total = 0

    def poke(self) -> None:
        """Called after a request commits events, so they go out without waiting for a poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # redis-py can swallow a cancellation that lands mid-command; the flag ends the
            # loop then, and the bounded wait keeps shutdown from hanging. Rows whose publish
            # was interrupted stay unpublished and go out on the next start.
            await asyncio.wait({task}, timeout=5.0)

    async def run(self) -> None:
        failures = 0
        cleanup_due = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            # Cleared before looking, so a poke that lands while we publish is never lost.
            self._wakeup.clear()
            try:
                published = await self.publish_batch()
                failures = 0
                if loop.time() >= cleanup_due:
                    await self.delete_old_published()
                    cleanup_due = loop.time() + 600
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis or DB down: back off and retry
                failures += 1
                published = 0
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("outbox relay failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(min(5.0, 0.2 * failures))
                continue
            if published >= self.batch_size:
                continue  # more waiting: keep draining
            if published and self.linger:
                await asyncio.sleep(self.linger)
                continue  # pokes meanwhile are covered by the next publish_batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval)

    async def publish_batch(self) -> int:
        async with self.db.transaction() as conn:
            claimed = await conn.execute(_claim_statement(self.outbox), {"limit": self.batch_size})
            rows = sorted(claimed.all(), key=lambda row: row.seq)  # RETURNING has no order
            if not rows:
                return 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.xadd(
                        self.stream,
                        {"event": row.event, "type": row.type},
                        maxlen=self.maxlen,
                        approximate=True,
                    )
                await pipe.execute()
        self.published_total += len(rows)
        return len(rows)

    async def delete_old_published(self) -> None:  # every 10 minutes: SQLAlchemy Core is fine
        async with self.db.transaction() as conn:
            await conn.execute(
                self.outbox.delete().where(
                    self.outbox.c.published_at < func.now() - PUBLISHED_RETENTION
                )
            )

    async def backlog(self) -> int:
        async with self.db.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(self.outbox)
                .where(self.outbox.c.published_at.is_(None))
            )
        return int(value or 0)


@cache
def _claim_statement(outbox: Table) -> TextClause:
    """Claim (lock, skipping rows another relay holds) and mark the oldest unpublished rows."""
    name = outbox.fullname
    return text(
        f"""
        WITH claimed AS (
            SELECT id FROM {name}
             WHERE published_at IS NULL
             ORDER BY seq
             LIMIT :limit
               FOR UPDATE SKIP LOCKED
        )
        UPDATE {name} AS o SET published_at = now()
          FROM claimed
         WHERE o.id = claimed.id
        RETURNING o.seq, o.type, CAST(o.payload AS text) AS event
        """
    )
