"""The `webhooks` consumer group: deliverable events in, one pending delivery per matching
subscription out, written in the consumer's transaction by one set-based statement per batch
(idempotent: the kernel records the event ids, and a (subscription, event) pair is unique).
Those the process's delivery worker has room for are written leased to it and handed to it
after the commit (no claim: one row version fewer per delivery); for any others it is woken
and claims them (delivery.py). Killed between the commit and the send, the process loses
nothing: the leases end and any worker sends them."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from services.webhooks import service
from services.webhooks.delivery import DeliveryWorker
from services.webhooks.events import DELIVERABLE
from services.webhooks.service import Handover
from services.webhooks.settings import WebhooksSettings
from services.webhooks.tables import processed_events
from stockmanager.db import Database
from stockmanager.events import Event
from stockmanager.events.consumer import EventConsumer

GROUP = "webhooks"


class WebhooksConsumer(EventConsumer):
    def __init__(
        self, settings: WebhooksSettings, db: Database, redis: Redis, worker: DeliveryWorker
    ) -> None:
        super().__init__(
            redis,
            stream=settings.event_stream,
            group=GROUP,
            types=DELIVERABLE,
            db=db,
            processed=processed_events,
            batch_handler=self._handle,
            reclaim_idle_ms=settings.event_reclaim_idle_ms,
            # Receivers expect an event within about a second of the change: after a short
            # batch wait 50 ms for more, not the kernel's 150 ms (tuned for CPU per event; the
            # fan-out is one INSERT per batch, so this costs little: bench/results/webhooks.md).
            linger_ms=50,
            # A new group reads the stream from its start (the kernel's default), not from "$":
            # the group is created by a task after the service is ready, and an event published
            # in between would be skipped. Old events meet no subscription: acknowledged after
            # one query per batch (currently_wanted).
        )
        self.settings = settings
        self.worker = worker
        self._handover: Handover | None = None  # written by the transaction being committed

    async def currently_wanted(self) -> frozenset[str] | None:
        # Events no active subscription wants (every event while there is none, the usual
        # case) are acknowledged without a transaction: 0.2-0.45 ms of CPU per sale before
        # (bench/results/sales.md). The kernel asks after reading the batch, so a
        # subscription sees every event published after it was created or enabled.
        assert self.db is not None  # a transactional consumer always has one
        async with self.db.connect() as conn:
            return await service.wanted_types(conn)

    async def _handle(self, conn: AsyncConnection, events: list[Event]) -> None:
        busy, per_subscription, total = self.worker.room()
        self._handover = await service.deliveries_for_events(
            conn, self.settings, events, busy=busy, per_subscription=per_subscription, total=total
        )

    async def after_commit(self, applied: list[Event]) -> None:
        handover, self._handover = self._handover, None
        if handover is None:
            return
        self.worker.take(handover.leased, handover.lease_ends)
        if handover.unleased:
            self.worker.wake()  # due now: claimed by whichever worker is free first

    async def after_rollback(self, events: list[Event]) -> None:
        self._handover = None  # nothing was written
