"""The products service's typed runtime: its settings, its resources, and the dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.products.openfoodfacts import OpenFoodFacts
from services.products.settings import ProductsSettings
from stockmanager.service_app import ServiceRuntime, runtime_dependency


@dataclass
class ProductsResources:
    openfoodfacts: OpenFoodFacts

    async def close(self) -> None:
        await self.openfoodfacts.close()


ProductsRuntime = ServiceRuntime[ProductsSettings, ProductsResources]
Runtime = Annotated[
    ProductsRuntime, Depends(runtime_dependency(ProductsSettings, ProductsResources))
]
