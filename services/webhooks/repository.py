"""All SQL of the webhooks service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.webhooks.tables import deliveries, payloads, subscriptions

# --- subscriptions ----------------------------------------------------------------------------


async def insert_subscription(conn: AsyncConnection, values: Mapping[str, Any]) -> Any:
    return (
        await conn.execute(insert(subscriptions).values(**values).returning(*subscriptions.c))
    ).one()


async def get_subscription(
    conn: AsyncConnection, subscription_id: int, *, lock: bool = False
) -> Any:
    query = select(subscriptions).where(subscriptions.c.id == subscription_id)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def list_subscriptions(
    conn: AsyncConnection, *, offset: int, limit: int
) -> tuple[Sequence[Any], int]:
    rows = (
        await conn.execute(
            select(subscriptions, func.count().over().label("total"))
            .order_by(subscriptions.c.id)
            .offset(offset)
            .limit(limit)
        )
    ).all()
    total = int(rows[0].total) if rows else await _count(conn)
    return rows, total


async def _count(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.count()).select_from(subscriptions)) or 0)


async def update_subscription(
    conn: AsyncConnection, subscription_id: int, values: Mapping[str, Any]
) -> Any:
    return (
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(**values, updated_at=func.now())
            .returning(*subscriptions.c)
        )
    ).one()


async def delete_subscription(conn: AsyncConnection, subscription_id: int) -> Any | None:
    # Its deliveries go with it (ON DELETE CASCADE); an attempt in flight records nothing.
    return (
        await conn.execute(
            delete(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .returning(*subscriptions.c)
        )
    ).first()


# --- deliveries: creation ---------------------------------------------------------------------

# One statement per consumer batch: every (event, active subscription wanting its type or `*`)
# pair, in stream order. The batch's payloads travel as one JSON array (each payload holds its
# event's `id` and `type`): a text[] of JSON documents cost more to quote, client-side, than
# the rest of the consumer's work together (bench/results/webhooks.md). As `json`, not `jsonb`:
# each element keeps its exact text, stored once per event (payloads) and sent as is.
# The first `room` deliveries of each subscription (room: what this process's worker can take
# now) are written already leased to this process, as claim_due would lease them (attempt
# counted, due again when the lease ends), and come back with what sending needs: the worker
# gets them after the commit, so the usual path writes each delivery twice (inserted,
# outcome) instead of three times (inserted, claimed, outcome). The others are due at once,
# for any worker's claim. The lease counts from statement_timestamp(), not from the
# transaction's start: the caller's clock starts before the statement, so its idea of the
# lease's end is never later than the database's.
_FAN_OUT = text(
    """
    WITH busy AS (
        SELECT * FROM unnest(CAST(:busy_ids AS bigint[]), CAST(:busy_counts AS integer[]))
                   AS b(subscription_id, n)
    ), events AS (
        SELECT e.body, CAST(e.body->>'id' AS uuid) AS event_id,
               CAST(e.body->>'type' AS varchar(64)) AS event_type, e.n
          FROM json_array_elements(CAST(:payloads AS json)) WITH ORDINALITY AS e(body, n)
    ), pairs AS (
        SELECT s.id AS subscription_id, ev.event_id, ev.event_type, ev.n,
               row_number() OVER (PARTITION BY s.id ORDER BY ev.n)
                   <= :per_subscription - COALESCE(b.n, 0)
               AND row_number() OVER (ORDER BY ev.n, s.id) <= :total AS leased
          FROM events ev
          JOIN webhooks.subscriptions s
            ON s.active AND s.events && ARRAY[ev.event_type, CAST(:all AS varchar(64))]
          LEFT JOIN busy b ON b.subscription_id = s.id
    ), stored AS (
        INSERT INTO webhooks.payloads (event_id, body)
        SELECT ev.event_id, CAST(ev.body AS text)
          FROM events ev
         WHERE ev.event_id IN (SELECT event_id FROM pairs)
        ON CONFLICT (event_id) DO NOTHING
    ), inserted AS (
        INSERT INTO webhooks.deliveries
            (subscription_id, event_id, event_type, next_attempt_at, retry_until,
             lease_until, attempts, last_attempt_at)
        SELECT p.subscription_id, p.event_id, p.event_type,
               CASE WHEN p.leased THEN statement_timestamp() + make_interval(secs => :lease)
                    ELSE now() END,
               now() + make_interval(secs => :window),
               CASE WHEN p.leased THEN statement_timestamp() + make_interval(secs => :lease) END,
               CASE WHEN p.leased THEN 1 ELSE 0 END,
               CASE WHEN p.leased THEN statement_timestamp() END
          FROM pairs p
         ORDER BY p.n, p.subscription_id
        ON CONFLICT ON CONSTRAINT uq_deliveries_event_subscription DO NOTHING
        RETURNING id, subscription_id, event_id, event_type, attempts, retry_until,
                  lease_until IS NOT NULL AS leased
    )
    SELECT i.id, i.subscription_id, i.leased, CAST(i.event_id AS text) AS event_id,
           i.event_type, CASE WHEN i.leased THEN CAST(ev.body AS text) END AS body,
           i.attempts, i.retry_until, s.url, s.secret_encrypted, s.previous_secret_encrypted,
           s.previous_secret_expires_at
      FROM inserted i
      JOIN events ev ON ev.event_id = i.event_id
      JOIN webhooks.subscriptions s ON s.id = i.subscription_id
    """
)


async def fan_out(
    conn: AsyncConnection,
    payloads_json: str,
    *,
    all_events: str,
    window_seconds: float,
    lease_seconds: float,
    per_subscription: int,
    total: int,
    busy: Mapping[int, int],
) -> Sequence[Any]:
    """One pending delivery per (event, active subscription whose events hold the event's type
    or `all_events`); `payloads_json` is a JSON array of webhook payloads (events.py), whose
    `id` and `type` are the event's. Calling it again for the same events adds nothing.

    Of each subscription's new deliveries, the first `per_subscription - busy[id]` (and at most
    `total` in all) are leased to the caller for `lease_seconds`. Returns every delivery
    written, with `leased`; a leased one also has the columns claim_due returns."""
    result = await conn.execute(
        _FAN_OUT,
        {
            "payloads": payloads_json,
            "all": all_events,
            "window": window_seconds,
            "lease": lease_seconds,
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "per_subscription": per_subscription,
            "total": total,
        },
    )
    return result.all()


async def wanted_types(conn: AsyncConnection) -> set[str]:
    """The event types the active subscriptions want (`*` among them if one wants all)."""
    rows = await conn.execute(
        select(func.unnest(subscriptions.c.events).label("type"))
        .where(subscriptions.c.active)
        .distinct()
    )
    return {str(row.type) for row in rows}


async def insert_delivery(
    conn: AsyncConnection,
    *,
    subscription_id: int,
    event_id: str,
    event_type: str,
    body: str,
    window_seconds: float,
) -> int:
    """One pending delivery of a body of its own (the test ping's)."""
    await conn.execute(insert(payloads).values(event_id=event_id, body=body))
    delivery_id = await conn.scalar(
        pg_insert(deliveries)
        .values(
            subscription_id=subscription_id,
            event_id=event_id,
            event_type=event_type,
            next_attempt_at=func.now(),
            retry_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, window_seconds),
        )
        .returning(deliveries.c.id)
    )
    assert delivery_id is not None
    return int(delivery_id)


# --- deliveries: the worker -------------------------------------------------------------------

# The body comes back as the stored JSON text, sent as is.
# Due deliveries of active subscriptions, at most `per_sub - busy` per subscription (`busy`: this
# process's attempts in flight), leased: `next_attempt_at` moves to the lease's end, so a process
# killed mid-attempt leaves the row due again once the lease has expired.
_CLAIM = text(
    """
    WITH busy AS (
        SELECT * FROM unnest(CAST(:busy_ids AS bigint[]), CAST(:busy_counts AS integer[]))
                   AS b(subscription_id, n)
    ), picked AS (
        SELECT due.id
          FROM webhooks.subscriptions s
          LEFT JOIN busy b ON b.subscription_id = s.id
         CROSS JOIN LATERAL (
               SELECT d.id
                 FROM webhooks.deliveries d
                WHERE d.subscription_id = s.id
                  AND d.status = 'pending'
                  AND d.next_attempt_at <= now()
                ORDER BY d.next_attempt_at
                LIMIT GREATEST(0, :per_subscription - COALESCE(b.n, 0))
                  FOR UPDATE OF d SKIP LOCKED
         ) due
         WHERE s.active
         LIMIT :total
    )
    UPDATE webhooks.deliveries d
       SET next_attempt_at = now() + make_interval(secs => :lease),
           lease_until = now() + make_interval(secs => :lease),
           attempts = d.attempts + 1,
           last_attempt_at = now()
      FROM picked, webhooks.subscriptions s
     WHERE d.id = picked.id AND s.id = d.subscription_id
    RETURNING d.id, d.subscription_id, CAST(d.event_id AS text) AS event_id, d.event_type,
              (SELECT p.body FROM webhooks.payloads p WHERE p.event_id = d.event_id) AS body,
              d.attempts, d.retry_until, s.url, s.secret_encrypted,
              s.previous_secret_encrypted, s.previous_secret_expires_at
    """
)


async def claim_due(
    conn: AsyncConnection,
    *,
    total: int,
    per_subscription: int,
    busy: Mapping[int, int],
    lease_seconds: float,
) -> Sequence[Any]:
    return (
        await conn.execute(
            _CLAIM,
            {
                "busy_ids": list(busy),
                "busy_counts": list(busy.values()),
                "per_subscription": per_subscription,
                "total": total,
                "lease": lease_seconds,
            },
        )
    ).all()


# Successful attempts recorded, and their subscriptions' failure streaks ended, in one statement
# (a data-modifying CTE runs whether or not the outer statement reads it).
_SUCCEEDED = text(
    """
    WITH delivered AS (
        UPDATE webhooks.deliveries d
           SET status = 'succeeded', delivered_at = now(), next_attempt_at = NULL,
               lease_until = NULL, response_status = u.status, latency_ms = u.latency,
               response_body = u.body, last_error = NULL
          FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS integer[]),
                      CAST(:latencies AS integer[]), CAST(:bodies AS text[]))
               AS u(id, status, latency, body)
         WHERE d.id = u.id AND d.status = 'pending'
    )
    UPDATE webhooks.subscriptions s
       SET consecutive_failures = 0, failing_since = NULL
     WHERE s.id = ANY(CAST(:subscription_ids AS bigint[])) AND s.consecutive_failures <> 0
    """
)


async def record_successes(
    conn: AsyncConnection, outcomes: Sequence[tuple[int, int, int, int, str]]
) -> None:
    """(delivery id, subscription id, response status, latency ms, response excerpt) of
    successful attempts: the deliveries succeeded, their subscriptions' failure streaks end."""
    if not outcomes:
        return
    ids, subscription_ids, statuses, latencies, bodies = (
        list(column) for column in zip(*outcomes, strict=True)
    )
    await conn.execute(
        _SUCCEEDED,
        {
            "ids": ids,
            "subscription_ids": sorted(set(subscription_ids)),
            "statuses": statuses,
            "latencies": latencies,
            "bodies": bodies,
        },
    )


async def record_failure(
    conn: AsyncConnection,
    delivery_id: int,
    *,
    next_attempt_at: datetime | None,
    response_status: int | None,
    latency_ms: int | None,
    response_body: str | None,
    error: str,
) -> None:
    """A failed attempt: due again at `next_attempt_at`, or given up (`failed`) without one."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status == "pending")
        .values(
            status="pending" if next_attempt_at is not None else "failed",
            next_attempt_at=next_attempt_at,
            lease_until=None,
            response_status=response_status,
            latency_ms=latency_ms,
            response_body=response_body,
            last_error=error,
        )
    )


async def release(conn: AsyncConnection, delivery_ids: Sequence[int]) -> None:
    """Claimed deliveries never attempted: due again at once, their claim not counted."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == "pending")
        .values(
            next_attempt_at=func.now(),
            lease_until=None,
            attempts=func.greatest(deliveries.c.attempts - 1, 0),
        )
    )


async def count_failure(conn: AsyncConnection, subscription_id: int) -> Any | None:
    """One more failure in a row for the subscription; its row after that (None: deleted)."""
    return (
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(
                consecutive_failures=subscriptions.c.consecutive_failures + 1,
                failing_since=func.coalesce(subscriptions.c.failing_since, func.now()),
            )
            .returning(
                *subscriptions.c, (func.now() - subscriptions.c.failing_since).label("failing_for")
            )
        )
    ).first()


async def disable_failing(conn: AsyncConnection, subscription_id: int, reason: str) -> Any | None:
    """Disable an active subscription; None if it was not active (another worker was first)."""
    return (
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id, subscriptions.c.active)
            .values(active=False, disabled_reason=reason, updated_at=func.now())
            .returning(*subscriptions.c)
        )
    ).first()


# The oldest rows come first in id order (ids follow creation), so a batch walks the primary key
# from its start and stops once it has `limit`; SKIP LOCKED lets replicas prune side by side.
_PRUNE = text(
    """
    WITH doomed AS (
        SELECT id FROM webhooks.deliveries
         WHERE created_at < now() - make_interval(secs => :age) AND status <> 'pending'
         ORDER BY id
         LIMIT :limit
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhooks.deliveries d USING doomed WHERE d.id = doomed.id
    """
)
# Payloads past the retention that no delivery refers to any more (their deliveries pruned,
# or deleted with their subscription), oldest first; an event's deliveries are found through
# the unique key's leading event_id. A payload is never younger than its deliveries, so one
# past the retention without any is never needed again.
_PRUNE_PAYLOADS = text(
    """
    WITH doomed AS (
        SELECT p.event_id FROM webhooks.payloads p
         WHERE p.created_at < now() - make_interval(secs => :age)
           AND NOT EXISTS (SELECT 1 FROM webhooks.deliveries d WHERE d.event_id = p.event_id)
         ORDER BY p.created_at
         LIMIT :limit
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM webhooks.payloads p USING doomed WHERE p.event_id = doomed.event_id
    """
)


async def oldest_is_older_than(conn: AsyncConnection, age_seconds: float) -> bool:
    """Whether the oldest payload was stored more than `age_seconds` ago (one probe of its
    index: the usual answer, no, ends a cleanup there). A delivery is never older than its
    payload, so no delivery is older either."""
    older = await conn.scalar(
        select(
            payloads.c.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, age_seconds)
        )
        .order_by(payloads.c.created_at)
        .limit(1)
    )
    return bool(older)


async def prune_log(conn: AsyncConnection, *, age_seconds: float, limit: int) -> int:
    """Delete up to `limit` finished deliveries created more than `age_seconds` ago; pending
    ones stay whatever their age (they are still being retried)."""
    result = await conn.execute(_PRUNE, {"age": age_seconds, "limit": limit})
    return int(result.rowcount or 0)


async def prune_payloads(conn: AsyncConnection, *, age_seconds: float, limit: int) -> int:
    """Delete up to `limit` payloads stored more than `age_seconds` ago that no delivery
    refers to any more."""
    result = await conn.execute(_PRUNE_PAYLOADS, {"age": age_seconds, "limit": limit})
    return int(result.rowcount or 0)


async def count_overdue(conn: AsyncConnection, *, late_seconds: float) -> int:
    """Pending deliveries of active subscriptions due for more than `late_seconds` that no
    worker holds (a claimed one's due time is its lease's end, in the future)."""
    value = await conn.scalar(
        select(func.count())
        .select_from(deliveries.join(subscriptions))
        .where(
            deliveries.c.status == "pending",
            subscriptions.c.active,
            deliveries.c.next_attempt_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, late_seconds),
        )
    )
    return int(value or 0)


# --- deliveries: the log ----------------------------------------------------------------------


async def list_deliveries(
    conn: AsyncConnection,
    subscription_id: int,
    *,
    status: str | None,
    event_type: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Any], int]:
    conditions = [deliveries.c.subscription_id == subscription_id]
    if status is not None:
        conditions.append(deliveries.c.status == status)
    if event_type is not None:
        conditions.append(deliveries.c.event_type == event_type)
    rows = (
        await conn.execute(
            select(deliveries, func.count().over().label("total"))
            .where(*conditions)
            .order_by(deliveries.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    if rows:
        return rows, int(rows[0].total)
    total = await conn.scalar(select(func.count()).select_from(deliveries).where(*conditions))
    return rows, int(total or 0)


async def redeliver(
    conn: AsyncConnection, subscription_id: int, delivery_id: int, window_seconds: float
) -> Any | None:
    """Make a delivery due now, with a fresh retry window (None: no such delivery)."""
    return (
        await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.subscription_id == subscription_id,
            )
            .values(
                status="pending",
                next_attempt_at=func.now(),
                lease_until=None,
                retry_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, window_seconds),
            )
            .returning(deliveries.c.id)
        )
    ).first()
