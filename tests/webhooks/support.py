"""Helpers of the webhook tests: API calls through the gateway as root."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.stack import Stack, unique


def create_product(root: httpx.Client, stock: int = 1000) -> int:
    barcode = unique("78")[:20]
    response = root.post(
        "/api/products",
        json={
            "barcode": barcode,
            "name": unique("W")[:25],
            "quantity": stock,
            "min_quantity": 0,
            "price": 5.5,
        },
    )
    assert response.status_code == 201, response.text
    listed = root.get("/api/products_all", params={"search": barcode}).json()["data"]
    return int(next(p["id"] for p in listed if p["barcode"] == barcode))


def sell(root: httpx.Client, product_id: int, quantity: int = 1) -> int:
    response = root.post(
        "/api/sales/bulk", json={"items": [{"item_id": product_id, "quantity": quantity}]}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["sale_id"])


def subscribe(root: httpx.Client, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    response = root.post("/api/webhooks", json={"url": url, "events": events, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("whsec_")
    return created


def deliveries(root: httpx.Client, webhook_id: int, **params: Any) -> list[dict[str, Any]]:
    response = root.get(f"/api/webhooks/{webhook_id}/deliveries", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def as_root(stack: Stack) -> httpx.Client:
    return stack.root()


def clear_subscriptions(root: httpx.Client) -> None:
    """Delete every subscription (earlier tests' receivers are gone: no failures spill over)."""
    listed = root.get("/api/webhooks", params={"limit": 100}).json()["data"]
    for item in listed:
        assert root.delete(f"/api/webhooks/{item['id']}").status_code == 200


def webhook(root: httpx.Client, webhook_id: int) -> dict[str, Any]:
    response = root.get(f"/api/webhooks/{webhook_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def service_metric(stack: Stack, name: str) -> float:
    """A label-less metric of the (one) webhooks process, read from its /metrics."""
    (url,) = stack.service_urls["webhooks"]
    metrics = httpx.get(url + "/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.M)
    assert found is not None, f"the webhooks service exports no {name}"
    return float(found.group(1))
