"""The webhooks service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from cryptography.fernet import Fernet
from fastapi import Depends

from services.webhooks.delivery import DeliveryWorker
from services.webhooks.settings import WebhooksSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class WebhooksResources:
    cipher: Fernet  # encrypts and decrypts the signing secrets
    worker: DeliveryWorker

    async def close(self) -> None:
        await self.worker.stop()


WebhooksRuntime = ServiceRuntime[WebhooksSettings, WebhooksResources]
Runtime = Annotated[
    WebhooksRuntime, Depends(runtime_dependency(WebhooksSettings, WebhooksResources))
]
