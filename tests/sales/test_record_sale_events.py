"""`sales.record_sale` completes the event envelopes in SQL (the checkout in one statement):
what it writes must be what the Python builders (services/sales/events.py) give for the same
sale, so the payload contract keeps one meaning whichever side builds it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from services.sales import events
from services.sales.model import Sale, SaleLine
from stockmanager.contracts.events import SaleCreated, StockLow
from stockmanager.contracts.stock import StockChange
from stockmanager.db import Database
from stockmanager.events import Event
from stockmanager.identity import Identity
from tests.sales.support import Account, create_products, outbox_events
from tests.support.stack import Stack, unique

# Fields the builders draw fresh (a uuid, the clock): compared for shape, not value.
FRESH = ("id", "occurred_at")


def _comparable(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in envelope.items() if key not in FRESH}


async def test_sql_built_events_equal_the_python_builders(
    stack: Stack, db: Database, seller: Account
) -> None:
    names = unique("Vino"), unique("Queso"), unique("Pan")
    a, b, c = await create_products(
        db,
        {"name": names[0], "price": "19.99", "quantity": 10, "min_quantity": 7},
        {"name": names[1], "price": "20.00", "quantity": 4, "min_quantity": 2},
        {"name": names[2], "price": "0.10", "quantity": 50, "min_quantity": 1},
    )
    lines = [(c, 3), (a, 3), (b, 2)]  # not in id order: the lines keep the order asked
    response = seller.client.post(
        "/api/sales/bulk",
        json={"items": [{"item_id": i, "quantity": q} for i, q in lines], "payment_method": "Yape"},
    )
    assert response.status_code == 201, response.text
    sale_id = response.json()["sale_id"]
    written = await outbox_events(db, [sale_id], [a, b, c])
    created, *low = (Event(**envelope) for envelope in written)

    caller = Identity(
        user_id=seller.id,
        username=seller.username,
        role=seller.role,
        request_id=created.request_id,
        ip=created.ip,
        issued_at=0.0,
    )
    prices = {a: Decimal("19.99"), b: Decimal("20.00"), c: Decimal("0.10")}
    by_id = dict(zip((a, b, c), names, strict=True))
    sale = Sale(
        id=sale_id,
        sold_at=created.occurred_at,  # type: ignore[arg-type]  # not part of the payload
        vendor_id=seller.id,
        vendor_username=seller.username,
        payment_method="Yape",
        lines=tuple(SaleLine(i, by_id[i], q, prices[i]) for i, q in lines),
    )
    expected = events.sale_created(sale, caller)
    assert _comparable(written[0]) == _comparable(_wire(expected))
    assert created.data_as(SaleCreated) == expected.data_as(SaleCreated)

    # Vino 10 -> 7 (min 7) and Queso 4 -> 2 (min 2) crossed; Pan did not. Id order.
    changes = [
        StockChange(a, names[0], prices[a], 10, 7, 7, 1),
        StockChange(b, names[1], prices[b], 4, 2, 2, 1),
        StockChange(c, names[2], prices[c], 50, 47, 1, 1),
    ]
    expected_low = events.stock_low(changes, caller)
    assert [_comparable(e) for e in written[1:]] == [_comparable(_wire(e)) for e in expected_low]
    assert [e.data_as(StockLow) for e in low] == [e.data_as(StockLow) for e in expected_low]
    assert len({e.id for e in (created, *low)}) == 3  # every event its own id


def _wire(event: Event) -> dict[str, Any]:
    """The envelope as the outbox stores it (a JSON round trip)."""
    return dict(orjson.loads(event.to_json()))
