"""The event machinery against real PostgreSQL and Redis: outbox → relay → stream → consumer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection

from stockmanager.db import Database
from stockmanager.events import Event, new_event, write_event
from stockmanager.events.consumer import EventConsumer
from stockmanager.events.outbox import outbox_table, processed_events_table
from stockmanager.events.relay import OutboxRelay
from stockmanager.identity import Identity
from stockmanager.migration_ddl import event_tables_ddl

SCHEMA = "kernel_test"


@pytest_asyncio.fixture(scope="module")
async def tables(db: Database) -> AsyncIterator[MetaData]:
    async with db.transaction() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        for statement in event_tables_ddl(SCHEMA).split(";"):
            if statement.strip():
                await conn.execute(text(statement))
        await conn.execute(text(f"CREATE TABLE {SCHEMA}.applied (event_id uuid, note text)"))
    metadata = MetaData(schema=SCHEMA)
    outbox_table(metadata)
    processed_events_table(metadata)
    yield metadata


def identity() -> Identity:
    return Identity(
        user_id=1, username="root", role="root", request_id="r1", ip="127.0.0.1", issued_at=0.0
    )


def an_event(note: str) -> Event:
    return new_event(
        "test.happened", identity=identity(), entity_type="thing", entity_id=1, data={"note": note}
    )


async def applied_notes(db: Database) -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(text(f"SELECT note FROM {SCHEMA}.applied ORDER BY note"))
        return [row.note for row in rows]


async def record(conn: AsyncConnection, event: Event) -> None:
    await conn.execute(
        text(f"INSERT INTO {SCHEMA}.applied (event_id, note) VALUES (:id, :note)"),
        {"id": event.id, "note": event.data["note"]},
    )


async def wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def make_consumer(
    redis: Redis,
    db: Database,
    metadata: MetaData,
    stream: str,
    group: str,
    name: str,
    reclaim_ms: int = 60_000,
) -> EventConsumer:
    return EventConsumer(
        redis,
        stream=stream,
        group=group,
        types=["test.happened"],
        db=db,
        processed=metadata.tables[f"{SCHEMA}.processed_events"],
        handler=record,
        consumer_name=name,
        reclaim_idle_ms=reclaim_ms,
        block_ms=100,
    )


async def test_committed_event_reaches_consumer_and_rolled_back_never_does(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    outbox = tables.tables[f"{SCHEMA}.outbox"]
    committed, rolled_back = f"c-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}"
    async with db.transaction() as conn:
        await write_event(conn, outbox, an_event(committed))
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await write_event(conn, outbox, an_event(rolled_back))
            raise RuntimeError("business rule failed after writing the event")

    relay = OutboxRelay(db, redis, outbox, stream=stream, maxlen=10_000, poll_interval=0.05)
    consumer = make_consumer(redis, db, tables, stream, "g1", "c1")
    relay.start()
    consumer.start()
    try:

        async def arrived() -> bool:
            return committed in await applied_notes(db)

        await wait_for(arrived)
        # Drain: the relay has nothing more to publish and the consumer has nothing pending.
        assert await relay.backlog() == 0
        messages = await redis.xrange(stream)
        notes = [Event.from_json(fields[b"event"]).data["note"] for _, fields in messages]
        assert committed in notes
        assert rolled_back not in notes
        assert rolled_back not in await applied_notes(db)
    finally:
        await consumer.stop()
        await relay.stop()


async def test_consumer_dying_before_ack_gets_event_again_and_applies_once(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    note = f"d-{uuid.uuid4().hex}"
    await redis.xadd(stream, {"event": an_event(note).to_json()})

    # A consumer reads the message, applies and commits it, then "dies" before XACK.
    doomed = make_consumer(redis, db, tables, stream, "g2", "doomed")
    await doomed.ensure_group()
    response = await redis.xreadgroup("g2", "doomed", {stream: ">"}, count=10)
    [(_, [(_message_id, fields)])] = response
    await doomed.apply(Event.from_json(fields[b"event"]))  # committed, never acknowledged
    assert (await redis.xpending(stream, "g2"))["pending"] == 1

    # A second consumer reclaims the stale message: it is delivered again but applied once.
    survivor = make_consumer(redis, db, tables, stream, "g2", "survivor", reclaim_ms=100)
    await asyncio.sleep(0.15)  # let the message become idle longer than reclaim_ms
    reclaimed = await survivor.reclaim_stale()
    assert reclaimed == 1
    assert (await redis.xpending(stream, "g2"))["pending"] == 0
    assert (await applied_notes(db)).count(note) == 1


async def test_consumer_dying_before_commit_gets_event_again_and_applies_it(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    note = f"n-{uuid.uuid4().hex}"
    await redis.xadd(stream, {"event": an_event(note).to_json()})
    doomed = make_consumer(redis, db, tables, stream, "g3", "doomed")
    await doomed.ensure_group()
    await redis.xreadgroup("g3", "doomed", {stream: ">"}, count=10)  # read, then crash
    assert note not in await applied_notes(db)

    survivor = make_consumer(redis, db, tables, stream, "g3", "survivor", reclaim_ms=100)
    await asyncio.sleep(0.15)
    assert await survivor.reclaim_stale() == 1
    assert (await applied_notes(db)).count(note) == 1


async def test_events_written_while_redis_is_down_are_delivered_after_it_returns(
    db: Database, tables: MetaData, tmp_path: Path
) -> None:
    from stockmanager.embedded import EmbeddedRedis

    outbox = tables.tables[f"{SCHEMA}.outbox"]
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    port = server.port
    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    stream = f"test-stream-{uuid.uuid4().hex}"
    relay = OutboxRelay(db, client, outbox, stream=stream, maxlen=10_000, poll_interval=0.05)
    try:
        # Drain rows other tests left unpublished, so the count below is ours alone.
        while await relay.publish_batch():
            pass
        server.stop()
        notes = [f"o-{uuid.uuid4().hex}" for _ in range(5)]
        for note in notes:  # the business transactions succeed with Redis down
            async with db.transaction() as conn:
                await write_event(conn, outbox, an_event(note))
        relay.start()
        await asyncio.sleep(0.3)  # the relay is retrying against a dead server meanwhile
        assert await relay.backlog() >= 5

        restarted = EmbeddedRedis(tmp_path / "redis", port=port)
        restarted.start()
        try:

            async def delivered() -> bool:
                try:
                    messages = await client.xrange(stream)
                except Exception:  # noqa: BLE001 - reconnecting
                    return False
                seen = {Event.from_json(f[b"event"]).data["note"] for _, f in messages}
                return set(notes) <= seen

            await wait_for(delivered, within=15)
        finally:
            await relay.stop()
            restarted.stop()
    finally:
        await client.aclose()
        server.stop()


async def test_a_batch_is_applied_once_and_a_poison_event_is_isolated(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    notes = [f"b-{uuid.uuid4().hex}" for _ in range(30)]
    poison = f"poison-{uuid.uuid4().hex}"
    events = [an_event(note) for note in notes[:15]]
    events.append(an_event(poison))
    events += [an_event(note) for note in notes[15:]]
    events.append(events[0])  # the relay published one event twice
    for event in events:
        await redis.xadd(stream, {"event": event.to_json()})

    async def refuse_poison(conn: AsyncConnection, event: Event) -> None:
        if event.data["note"] == poison:
            raise RuntimeError("this event can never be applied")
        await record(conn, event)

    committed_batches: list[int] = []

    class Recording(EventConsumer):
        async def after_commit(self, applied: list[Event]) -> None:
            committed_batches.append(len(applied))

    consumer = Recording(
        redis,
        stream=stream,
        group="g-batch",
        types=["test.happened"],
        db=db,
        processed=tables.tables[f"{SCHEMA}.processed_events"],
        handler=refuse_poison,
        consumer_name="batcher",
        reclaim_idle_ms=50,
        block_ms=50,
        max_attempts=3,
    )
    await consumer.ensure_group()
    consumer.start()
    try:

        async def settled() -> bool:
            pending = (await redis.xpending(stream, "g-batch"))["pending"]
            dead = await redis.xrange(consumer.dead_letter_stream)
            mine = [f for _, f in dead if poison.encode() in f[b"event"]]
            return pending == 0 and len(mine) == 1

        await wait_for(settled, within=20)
    finally:
        await consumer.stop()
    applied = await applied_notes(db)
    assert all(applied.count(note) == 1 for note in notes)
    assert poison not in applied
    # The first attempt was one batch (rolled back by the poison), then one at a time.
    assert sum(committed_batches) == 30


async def record_batch(conn: AsyncConnection, events: list[Event]) -> None:
    """A set-based handler: the whole batch in one INSERT."""
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.applied (event_id, note)"
            " SELECT unnest(CAST(:ids AS uuid[])), unnest(CAST(:notes AS text[]))"
        ),
        {"ids": [e.id for e in events], "notes": [e.data["note"] for e in events]},
    )


def batch_consumer(
    redis: Redis,
    db: Database,
    metadata: MetaData,
    stream: str,
    group: str,
    name: str,
    batch_handler: Callable[[AsyncConnection, list[Event]], Awaitable[None]],
    cls: type[EventConsumer] = EventConsumer,
    reclaim_ms: int = 60_000,
) -> EventConsumer:
    return cls(
        redis,
        stream=stream,
        group=group,
        types=["test.happened"],
        db=db,
        processed=metadata.tables[f"{SCHEMA}.processed_events"],
        batch_handler=batch_handler,
        consumer_name=name,
        reclaim_idle_ms=reclaim_ms,
        block_ms=50,
        max_attempts=3,
    )


async def test_a_batch_handler_applies_each_event_once_and_dead_letters_a_poison_event(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    notes = [f"s-{uuid.uuid4().hex}" for _ in range(40)]
    poison = f"poison-{uuid.uuid4().hex}"
    events = [an_event(note) for note in notes[:20]]
    events.append(an_event(poison))
    events += [an_event(note) for note in notes[20:]]
    events.append(events[3])  # published twice by the relay
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(stream, {"event": event.to_json(), "type": event.type})
        # Another type on the same stream: acknowledged, never handled.
        pipe.xadd(stream, {"event": b"not even json", "type": "other.type"})
        await pipe.execute()

    batch_sizes: list[int] = []

    async def refuse_poison(conn: AsyncConnection, batch: list[Event]) -> None:
        batch_sizes.append(len(batch))
        if any(event.data["note"] == poison for event in batch):
            raise RuntimeError("this event can never be applied")
        await record_batch(conn, batch)

    consumer = batch_consumer(
        redis, db, tables, stream, "g-set", "setter", refuse_poison, reclaim_ms=50
    )
    await consumer.ensure_group()
    consumer.start()
    try:

        async def settled() -> bool:
            pending = (await redis.xpending(stream, "g-set"))["pending"]
            dead = await redis.xrange(consumer.dead_letter_stream)
            mine = [f for _, f in dead if poison.encode() in f[b"event"]]
            return pending == 0 and len(mine) == 1

        await wait_for(settled, within=20)
    finally:
        await consumer.stop()
    applied = await applied_notes(db)
    assert all(applied.count(note) == 1 for note in notes)
    assert poison not in applied
    assert batch_sizes[0] == 41  # the first read: every new event in one call (duplicate out)
    assert consumer.processed_total == 41  # the other type is not counted as processed
    dead = await redis.xrange(consumer.dead_letter_stream)
    assert not [f for _, f in dead if b"not even json" in f[b"event"]]


async def test_a_crash_between_commit_and_ack_redelivers_the_batch_without_double_effects(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    notes = [f"k-{uuid.uuid4().hex}" for _ in range(12)]
    async with redis.pipeline(transaction=False) as pipe:
        for note in notes:
            pipe.xadd(stream, {"event": an_event(note).to_json(), "type": "test.happened"})
        await pipe.execute()

    committed: list[int] = []

    class DiesAfterCommit(EventConsumer):
        async def after_commit(self, applied: list[Event]) -> None:
            committed.append(len(applied))
            # The process is killed here: committed, never acknowledged.
            raise asyncio.CancelledError

    doomed = batch_consumer(
        redis, db, tables, stream, "g-crash", "doomed", record_batch, DiesAfterCommit
    )
    await doomed.ensure_group()
    doomed.start()
    try:

        async def read_and_committed() -> bool:
            return committed == [len(notes)]

        await wait_for(read_and_committed)
    finally:
        await doomed.stop()
    assert (await redis.xpending(stream, "g-crash"))["pending"] == len(notes)
    applied = await applied_notes(db)
    assert all(applied.count(note) == 1 for note in notes)

    seen: list[Event] = []

    async def must_not_reapply(conn: AsyncConnection, batch: list[Event]) -> None:
        seen.extend(batch)
        await record_batch(conn, batch)

    survivor = batch_consumer(
        redis, db, tables, stream, "g-crash", "survivor", must_not_reapply, reclaim_ms=1
    )

    async def reclaimed_all() -> bool:
        await survivor.reclaim_stale()
        return (await redis.xpending(stream, "g-crash"))["pending"] == 0

    await wait_for(reclaimed_all)
    assert seen == []  # every id was in processed_events: skipped, only acknowledged
    applied = await applied_notes(db)
    assert all(applied.count(note) == 1 for note in notes)


class Interested(EventConsumer):
    """A consumer whose interest changes at run time (as webhooks' does with subscriptions)."""

    wanted: frozenset[str] | None = frozenset()

    async def currently_wanted(self) -> frozenset[str] | None:
        return self.wanted


async def test_events_outside_the_current_interest_are_acknowledged_without_a_transaction(
    db: Database, redis: Redis, tables: MetaData
) -> None:
    stream = f"test-stream-{uuid.uuid4().hex}"
    consumer = Interested(
        redis,
        stream=stream,
        group="g-interest",
        types=None,
        db=db,
        processed=tables.tables[f"{SCHEMA}.processed_events"],
        batch_handler=record_batch,
        consumer_name="interested",
        block_ms=50,
    )

    def typed(kind: str) -> Event:
        return new_event(
            kind,
            identity=identity(),
            entity_type="thing",
            entity_id=1,
            data={"note": f"{kind}-{uuid.uuid4().hex}"},
        )

    async def publish(events: list[Event]) -> str:
        last = b""
        for event in events:
            last = await redis.xadd(stream, {"event": event.to_json(), "type": event.type})
        return last.decode()

    async def consumed(last_id: str) -> bool:
        groups = await redis.xinfo_groups(stream)
        delivered = groups[0]["last-delivered-id"]
        delivered = delivered.decode() if isinstance(delivered, bytes) else delivered
        return delivered == last_id and (await redis.xpending(stream, "g-interest"))["pending"] == 0

    async def processed(events: list[Event]) -> int:
        async with db.connect() as conn:
            return int(
                await conn.scalar(
                    text(
                        f"SELECT count(*) FROM {SCHEMA}.processed_events"
                        " WHERE event_id = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": [e.id for e in events]},
                )
                or 0
            )

    await consumer.ensure_group()
    consumer.start()
    try:
        ignored = [typed("test.happened") for _ in range(5)] + [
            typed("test.other") for _ in range(5)
        ]
        first_last = await publish(ignored)
        await wait_for(lambda: consumed(first_last), within=20)
        consumer.wanted = frozenset({"test.happened"})
        wanted = [typed("test.happened") for _ in range(3)]
        others = [typed("test.other") for _ in range(3)]
        second_last = await publish(
            [wanted[0], others[0], wanted[1], others[1], others[2], wanted[2]]
        )
        await wait_for(lambda: consumed(second_last), within=20)
    finally:
        await consumer.stop()
    applied = set(await applied_notes(db))
    assert {e.data["note"] for e in wanted} <= applied
    assert not {e.data["note"] for e in ignored + others} & applied
    # Nothing was written for the events nobody wanted: not even the processed-event record.
    assert await processed(ignored + others) == 0
    assert await processed(wanted) == 3
