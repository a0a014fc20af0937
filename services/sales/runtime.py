"""The sales service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from psycopg_pool import AsyncConnectionPool

from services.sales.idempotency import KeyPurger
from services.sales.repository_checkout import CheckoutConnection
from services.sales.settings import SalesSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class SalesResources:
    # The sale POSTs' own connections (checkout.py).
    checkout_pool: AsyncConnectionPool[CheckoutConnection]
    # Deletes expired Idempotency-Key records in the background.
    purger: KeyPurger
    # A relay wake-up is scheduled (checkout.py coalesces the pokes of a burst of sales).
    relay_poke_pending: bool = False

    async def close(self) -> None:
        # The pool closes even when stopping the purger failed.
        with contextlib.suppress(Exception):
            await self.purger.stop()
        await self.checkout_pool.close()


SalesRuntime = ServiceRuntime[SalesSettings, SalesResources]
Runtime = Annotated[SalesRuntime, Depends(runtime_dependency(SalesSettings, SalesResources))]
