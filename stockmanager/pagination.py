"""Page/limit parsing and the `{data,total,page,pages,limit}` envelope (reference §4.5).

Invalid input never fails a request: it falls back to the default, and limits are clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stockmanager.contracts.fields import query_int


@dataclass(frozen=True, slots=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def envelope(self, data: list[Any], total: int) -> dict[str, Any]:
        return {
            "data": data,
            "total": total,
            "page": self.page,
            "pages": pages_for(total, self.limit),
            "limit": self.limit,
        }


def pages_for(total: int, limit: int) -> int:
    return max(1, math.ceil(total / limit))


def parse_page(page: str | None, limit: str | None, *, default_limit: int, max_limit: int) -> Page:
    page_number = max(1, query_int(page, 1))
    size = min(max_limit, max(1, query_int(limit, default_limit)))
    # Offsets beyond what a bigint can hold are nonsense; cap the page so SQL stays valid.
    page_number = min(page_number, 10**12 // size)
    return Page(page=page_number, limit=size)


def parse_offset_limit(
    offset: str | None, limit: str | None, *, default_limit: int, max_limit: int
) -> tuple[int, int]:
    size = min(max_limit, max(1, query_int(limit, default_limit)))
    start = min(max(0, query_int(offset, 0)), 10**12)
    return start, size
