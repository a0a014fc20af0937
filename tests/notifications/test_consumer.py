"""The `notifications` consumer: envelope events written straight to the stream (as a relay does)
become notifications with upstream's titles, messages and types, each exactly once."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from stockmanager.db import Database
from stockmanager.events import EventType
from tests.notifications.conftest import SecondSite
from tests.notifications.support import (
    User,
    consumed,
    create_user,
    event_for,
    eventually,
    inject,
    notifications_of,
)
from tests.support.stack import Stack, unique


async def _only(db: Database, user: User, count: int = 1) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        rows = await notifications_of(db, user.id)
        return rows if len(rows) >= count else None

    return await eventually(probe)


def _shape(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["title"], row["message"], row["type"]


async def test_sale_created_notifies_the_seller(stack: Stack, db: Database, redis: Redis) -> None:
    seller = await create_user(stack)
    event = event_for(
        EventType.SALE_CREATED,
        actor=seller,
        entity_type="sale",
        entity_id=9_000_000_041,
        data={
            "sale_id": 9_000_000_041,
            "vendor_id": seller.id,
            "vendor_username": seller.username,
            "payment_method": "Efectivo",
            "total": 30.0,
            "items": [
                {"item_id": 1, "name": "Yerba", "quantity": 2, "unit_price": 10, "subtotal": 20},
                {"item_id": 2, "name": "Azúcar", "quantity": 1, "unit_price": 10, "subtotal": 10},
            ],
        },
    )
    await inject(redis, event)
    [row] = await _only(db, seller)
    assert _shape(row) == (
        "Venta registrada",
        "Venta registrada de los productos Yerba, Azúcar con cantidades 2, 1.",
        "success",
    )
    assert row["is_read"] is False and row["action_url"] is None


async def test_sale_recorded_for_another_seller_goes_to_that_seller(
    stack: Stack, db: Database, redis: Redis
) -> None:
    admin, seller = await create_user(stack, role="admin"), await create_user(stack)
    last = await inject(
        redis,
        event_for(
            EventType.SALE_CREATED,
            actor=admin,
            entity_type="sale",
            entity_id=9_000_000_007,
            data={
                "sale_id": 9_000_000_007,
                "vendor_id": seller.id,
                "items": [{"item_id": 3, "name": "Pan", "quantity": 5}],
            },
        ),
    )
    await consumed(redis, last)
    [row] = await notifications_of(db, seller.id)
    assert row["message"] == "Venta registrada de los productos Pan con cantidades 5."
    assert await notifications_of(db, admin.id) == []


async def test_product_and_bulk_events_notify_the_actor(
    stack: Stack, db: Database, redis: Redis
) -> None:
    actor = await create_user(stack, role="admin")
    snapshot = {
        "id": 9,
        "barcode": "779",
        "name": "Leche",
        "description": None,
        "price": 1.5,
        "quantity": 10,
        "min_quantity": 2,
        "status": 1,
        "expiration_date": None,
    }
    events = [
        event_for(
            EventType.PRODUCT_CREATED,
            actor=actor,
            entity_type="product",
            entity_id=9,
            data={"product": snapshot},
            after=snapshot,
        ),
        event_for(
            EventType.PRODUCT_UPDATED,
            actor=actor,
            entity_type="product",
            entity_id=9,
            data={"changed": ["name"]},
            before=snapshot,
            after={**snapshot, "name": "Leche entera"},
        ),
        event_for(
            EventType.PRODUCT_DISABLED,
            actor=actor,
            entity_type="product",
            entity_id=9,
            data={"name": "Leche entera"},
            before={"status": 1},
            after={"status": 0},
        ),
        event_for(
            EventType.PRODUCT_ACTIVATED,
            actor=actor,
            entity_type="product",
            entity_id=9,
            data={"name": "Leche entera"},
            before={"status": 0},
            after={"status": 1},
        ),
        event_for(
            EventType.PRODUCT_PRICES_BULK_UPDATED,
            actor=actor,
            entity_type="product",
            entity_id=None,
            data={"products": [{"id": 9, "name": "Leche", "old_price": 1, "new_price": 2}]},
        ),
        event_for(
            EventType.PRODUCT_STOCK_BULK_UPDATED,
            actor=actor,
            entity_type="product",
            entity_id=None,
            data={"products": [{"id": 9, "name": "Leche", "old_stock": 1, "new_stock": 9}]},
        ),
        event_for(
            EventType.SALE_UPDATED,
            actor=actor,
            entity_type="sale",
            entity_id=55,
            data={"sale_id": 55},
        ),
    ]
    for event in events:
        await inject(redis, event)
    rows = await _only(db, actor, len(events))
    # Several consumers of the group may process these in parallel: compare as sets.
    assert sorted(_shape(row) for row in rows) == sorted(
        [
            ("Producto agregado", "El producto 'Leche' ha sido agregado al inventario.", "success"),
            ("Producto actualizado", "El producto 'Leche entera' ha sido actualizado.", "success"),
            ("Producto deshabilitado", "El producto ha sido deshabilitado.", "warning"),
            ("Producto activado", "El producto Leche entera ha sido activado.", "success"),
            ("Precios actualizados", "Los precios de los productos han sido actualizados.", "info"),
            ("Stock actualizado", "El stock de los productos ha sido actualizado.", "info"),
            ("Venta actualizada", "Venta #55 ha sido actualizada exitosamente", "success"),
        ]
    )


async def test_low_stock_notifies_actor_and_every_active_admin_and_root_once(
    stack: Stack, db: Database, redis: Redis
) -> None:
    seller = await create_user(stack)
    admin = await create_user(stack, role="admin")
    disabled_admin = await create_user(stack, role="admin", status=0)
    pending_admin = await create_user(stack, role="admin", application="pending")
    bystander = await create_user(stack)
    event = event_for(
        EventType.STOCK_LOW,
        actor=seller,
        entity_type="product",
        entity_id=9_000_000_077,
        data={
            "item_id": 9_000_000_077,
            "name": "Fideos",
            "quantity": 3,
            "min_quantity": 5,
            "notify_user_id": seller.id,
        },
    )
    await inject(redis, event)
    last = await inject(redis, event)  # redelivered: the same event id changes nothing
    expected = (
        "Stock bajo",
        "El producto Fideos (ID: 9000000077) tiene stock bajo (3 unidades).",
        "warning",
    )
    for user in (seller, admin):
        [row] = await _only(db, user)
        assert _shape(row) == expected

    async def root_rows() -> list[dict[str, Any]] | None:
        async with db.connect() as conn:
            from sqlalchemy import text

            root_id = await conn.scalar(text("SELECT id FROM users.users WHERE role = 'root'"))
        rows = [r for r in await notifications_of(db, int(root_id)) if r["message"] == expected[1]]
        return rows or None

    async with db.connect() as conn:
        from sqlalchemy import text

        states = (
            await conn.execute(
                text(
                    "SELECT id, role, status, application FROM users.directory WHERE id IN (:a, :b)"
                ),
                {"a": disabled_admin.id, "b": pending_admin.id},
            )
        ).all()
    # The refused recipients really are admins, one disabled and one with a pending application.
    assert sorted(tuple(row)[1:] for row in states) == [
        ("admin", 0, "accepted"),
        ("admin", 1, "pending"),
    ]
    assert len(await eventually(root_rows)) == 1
    await consumed(redis, last)  # both copies handled: nothing more can arrive
    assert await notifications_of(db, bystander.id) == []
    assert len(await notifications_of(db, seller.id)) == 1
    assert len(await notifications_of(db, admin.id)) == 1
    assert len(await root_rows() or []) == 1
    for refused in (disabled_admin, pending_admin):
        # (The pending one was told its account changed when root edited it; never low stock.)
        rows = await notifications_of(db, refused.id)
        assert all(row["title"] != "Stock bajo" for row in rows)


async def test_low_stock_caused_by_an_admin_reaches_them_once(
    stack: Stack, db: Database, redis: Redis
) -> None:
    admin = await create_user(stack, role="admin")
    event = event_for(
        EventType.STOCK_LOW,
        actor=admin,
        entity_type="product",
        entity_id=5,
        data={
            "item_id": 5,
            "name": "Arroz",
            "quantity": 0,
            "min_quantity": 1,
            "notify_user_id": admin.id,
        },
    )
    last = await inject(redis, event)
    await consumed(redis, last)
    [row] = await notifications_of(db, admin.id)
    assert row["title"] == "Stock bajo"


async def test_account_changed_by_admin_notifies_the_target_only(
    stack: Stack, db: Database, redis: Redis
) -> None:
    admin, target = await create_user(stack, role="admin"), await create_user(stack)
    snapshot = {
        "id": target.id,
        "username": target.username,
        "email": "x@y.z",
        "role": "vendedor",
        "status": 1,
        "application": "accepted",
    }
    self_service = event_for(
        EventType.USER_UPDATED,
        actor=target,
        entity_type="user",
        entity_id=target.id,
        data={"changed": ["email"], "password_changed": False, "by_admin": False},
        before=snapshot,
        after=snapshot,
    )
    by_admin = event_for(
        EventType.USER_UPDATED,
        actor=admin,
        entity_type="user",
        entity_id=target.id,
        data={"changed": ["role"], "password_changed": False, "by_admin": True},
        before=snapshot,
        after={**snapshot, "role": "admin"},
    )
    await inject(redis, self_service)
    await consumed(redis, await inject(redis, by_admin))
    [row] = await notifications_of(db, target.id)
    assert _shape(row) == (
        "Tu cuenta ha sido actualizada",
        "Un administrador ha realizado cambios en tu cuenta. Si no reconoces esta actividad, "
        "contacta al soporte.",
        "info",
    )
    assert await notifications_of(db, admin.id) == []


async def test_duplicate_deliveries_racing_on_two_consumers_apply_once(
    stack: Stack, db: Database, redis: Redis, second_site: SecondSite
) -> None:
    """With two notifications replicas in the group, ten copies of one event (a relay that
    republished, say) are processed concurrently; every recipient still gets exactly one."""
    seller = await create_user(stack)
    event = event_for(
        EventType.STOCK_LOW,
        actor=seller,
        entity_type="product",
        entity_id=99,
        data={
            "item_id": 99,
            "name": unique("Dup"),
            "quantity": 1,
            "min_quantity": 2,
            "notify_user_id": seller.id,
        },
    )
    async with redis.pipeline(transaction=False) as pipe:
        for _ in range(10):
            pipe.xadd("stockmanager:events", {"event": event.to_json()})
        ids = await pipe.execute()
    await consumed(redis, ids[-1].decode())
    rows = await notifications_of(db, seller.id)
    assert [row["title"] for row in rows] == ["Stock bajo"]
    async with db.connect() as conn:
        from sqlalchemy import text

        copies = await conn.scalar(
            text("SELECT count(*) FROM notifications.notifications WHERE message LIKE :m"),
            {"m": f"%{event.data['name']}%"},
        )
        admins = await conn.scalar(
            text(
                "SELECT count(*) FROM users.directory WHERE role IN ('admin', 'root') "
                "AND status = 1 AND application = 'accepted' AND id <> :s"
            ),
            {"s": seller.id},
        )
    assert copies == 1 + admins
