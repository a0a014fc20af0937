"""`GET /api/products/info/<barcode>`: product facts from OpenFoodFacts, cached in Redis.

Found and not-found answers are cached for an hour (`openfoodfacts_cache_ttl`); failures are
not. A lookup never takes longer than `openfoodfacts_timeout` seconds in total (connect, slow
bodies and the sister-site retry included), after which it is a 502.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.products.settings import ProductsSettings
from stockmanager.errors import ApiError, NotFound, ValidationFailed

log = logging.getLogger("stockmanager.products.openfoodfacts")

_BARCODE = re.compile(r"^\d{1,32}$")
CACHE_PREFIX = "products:openfoodfacts:"
FIELDS = (
    ("name", "product_name"),
    ("description", "generic_name"),
    ("brands", "brands"),
    ("categories", "categories"),
    ("image_url", "image_url"),
)


class OpenFoodFactsUnreachable(ApiError):
    status = 502
    code = "openfoodfacts_unreachable"
    default_message = "No se pudo conectar con OpenFoodFacts"


class OpenFoodFactsFailed(ApiError):
    status = 500
    code = "openfoodfacts_error"
    default_message = "Error al consultar OpenFoodFacts"


NOT_FOUND_MESSAGE = "Producto no encontrado en OpenFoodFacts"


class _NotFound(Exception):
    """OpenFoodFacts does not know the barcode (cacheable)."""


class OpenFoodFacts:
    def __init__(self, settings: ProductsSettings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.openfoodfacts_timeout),
            headers={"User-Agent": settings.openfoodfacts_user_agent},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def lookup(self, barcode: str) -> dict[str, Any]:
        if not _BARCODE.match(barcode):
            raise ValidationFailed("Código de barras inválido")
        key = CACHE_PREFIX + barcode
        cached = await self._cache_get(key)
        if cached is not None:
            if cached.get("found"):
                return dict(cached["product"])
            raise NotFound(NOT_FOUND_MESSAGE)
        try:
            async with asyncio.timeout(self.settings.openfoodfacts_timeout):
                product = await self._fetch(barcode)
        except _NotFound:
            await self._cache_set(key, {"found": False})
            raise NotFound(NOT_FOUND_MESSAGE) from None
        except (TimeoutError, httpx.HTTPError) as exc:
            log.warning("openfoodfacts unreachable", extra={"error": type(exc).__name__})
            raise OpenFoodFactsUnreachable() from exc
        await self._cache_set(key, {"found": True, "product": product})
        return product

    async def _fetch(self, barcode: str) -> dict[str, Any]:
        status, data = await self._get(self.settings.openfoodfacts_url, barcode)
        if status == 404:
            sister = self._sister_url(data)
            if sister is not None:
                status, data = await self._get(sister, barcode)
        if status == 404:
            raise _NotFound()
        if status != 200:
            raise OpenFoodFactsFailed()
        if data is None:
            raise OpenFoodFactsFailed()
        if data.get("status") != 1 or not isinstance(data.get("product"), dict):
            raise _NotFound()
        product: dict[str, Any] = data["product"]
        body: dict[str, Any] = {"barcode": barcode}
        for ours, theirs in FIELDS:
            value = product.get(theirs)
            body[ours] = value if isinstance(value, str) else ""
        return body

    async def _get(self, base: str, barcode: str) -> tuple[int, dict[str, Any] | None]:
        url = f"{base.rstrip('/')}/api/v0/product/{barcode}.json"
        response = await self.client.get(url)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        return response.status_code, data if isinstance(data, dict) else None

    def _sister_url(self, data: dict[str, Any] | None) -> str | None:
        """Upstream's retry: 'different product type' names the sister site in its last word."""
        verbose = (data or {}).get("status_verbose")
        if not isinstance(verbose, str) or "different product type" not in verbose.lower():
            return None
        words = re.findall(r"[a-z]+", verbose.lower())
        kind = words[-1] if words else ""
        kind = {"products": "product", "beauty": "beauty", "petfood": "petfood"}.get(kind, kind)
        return self.settings.openfoodfacts_sister_urls.get(kind)

    async def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.redis.get(key)
        except RedisError:
            return None  # a cache outage only costs a lookup
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    async def _cache_set(self, key: str, value: dict[str, Any]) -> None:
        try:
            await self.redis.set(key, orjson.dumps(value), ex=self.settings.openfoodfacts_cache_ttl)
        except RedisError:
            log.warning("openfoodfacts cache unavailable")
