"""Errors specific to sales (rendered by the kernel's handler like every ApiError)."""

from __future__ import annotations

from stockmanager.errors import Unprocessable, ValidationFailed


class InsufficientStock(ValidationFailed):
    """Upstream's stock error: 400 `{"error","product","requested","available"}`."""

    code = "insufficient_stock"
    default_message = "Stock insuficiente"


class ProductsUnavailable(ValidationFailed):
    code = "product_unavailable"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_message = "La Idempotency-Key ya se usó con una petición diferente"
