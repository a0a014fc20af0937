"""Errors specific to sales (rendered by the kernel's handler like every ApiError).

Refusals of stock changes (insufficient stock, unknown or disabled products) are the stock
function's contract: stockmanager.contracts.stock.
"""

from __future__ import annotations

from stockmanager.errors import Unprocessable


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_message = "La Idempotency-Key ya se usó con una petición diferente"
