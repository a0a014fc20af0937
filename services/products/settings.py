"""Settings of the products service (environment variables, prefix STOCKMANAGER_)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from stockmanager.settings import KernelSettings


class ProductsSettings(KernelSettings):
    # Connections: the kernel's defaults (stockmanager.settings.DEFAULT_DB_POOL_SIZE, 10 kept
    # open, no overflow), sized from this service's benchmark: with 4 (plus 4 overflow), more than 4
    # concurrent queries opened and closed an overflow connection per request, and a new
    # PostgreSQL backend costs ~4 ms of CPU, which doubled the CPU per list request at
    # concurrency 8 (bench/results/products.md). Requests hold a connection ~1-3 ms.
    # Base URL of the OpenFoodFacts API (`{base}/api/v0/product/{barcode}.json`).
    openfoodfacts_url: str = "https://world.openfoodfacts.org"
    # Seconds one lookup may take in total (connect + read) before it is answered with 502.
    openfoodfacts_timeout: float = 5.0
    # Seconds an OpenFoodFacts answer (found or not found) stays cached in Redis.
    openfoodfacts_cache_ttl: int = 3600
    openfoodfacts_user_agent: str = "Stockly - Python - Version 1.0"
    # Sister sites tried when OpenFoodFacts answers 404 "different product type: <kind>"
    # (as upstream does). JSON object in the environment.
    openfoodfacts_sister_urls: dict[str, str] = Field(
        default_factory=lambda: {
            "beauty": "https://world.openbeautyfacts.org",
            "petfood": "https://world.openpetfoodfacts.org",
            "product": "https://world.openproductsfacts.org",
        }
    )
    # Largest CSV import accepted, in rows (the gateway caps the body at 10 MiB).
    import_max_rows: int = 50_000
    # Search answers kept per process for reuse while still exact (search_cache.py); 0: none.
    search_cache_size: int = Field(2048, ge=0)


@lru_cache(maxsize=1)
def products_settings() -> ProductsSettings:
    return ProductsSettings()
