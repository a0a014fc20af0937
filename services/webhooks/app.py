"""The webhooks service application."""

from __future__ import annotations

from fastapi import FastAPI
from redis.asyncio import Redis

from services.webhooks.api import router
from services.webhooks.consumer import WebhooksConsumer
from services.webhooks.delivery import DeliveryWorker, measure_overdue
from services.webhooks.runtime import WebhooksResources, WebhooksRuntime
from services.webhooks.settings import WebhooksSettings, webhooks_settings
from services.webhooks.signing import secret_cipher
from services.webhooks.tables import outbox
from stockmanager.db import Database
from stockmanager.events.consumer import EventConsumer
from stockmanager.service_app import create_service_app


async def _open(settings: WebhooksSettings, db: Database, redis: Redis) -> WebhooksResources:
    cipher = secret_cipher(settings.webhooks_secret_key, settings.internal_secret)
    return WebhooksResources(cipher=cipher, worker=DeliveryWorker(settings, db, cipher))


def _consumers(runtime: WebhooksRuntime) -> list[EventConsumer]:
    # Runs once the relay exists: the worker pokes it after writing a `webhook.disabled`.
    worker = runtime.resources.worker
    worker.relay = runtime.relay
    worker.start()
    return [WebhooksConsumer(runtime.settings, runtime.db, runtime.redis, worker)]


async def _measure(runtime: WebhooksRuntime) -> None:
    await measure_overdue(runtime.db)


def create_app(settings: WebhooksSettings | None = None) -> FastAPI:
    return create_service_app(
        "webhooks",
        settings=settings or webhooks_settings(),
        routers=[router],
        resources=_open,
        outbox=outbox,
        consumers=_consumers,
        measure=_measure,
    )
