"""Answers of recent searches in this process: which products a page shows, and the total.

A search by name (`repository.reusable`) finds the same products in the same order for as
long as no product is added, removed, renamed, re-barcoded, re-described or enabled/disabled;
stock and price changes, every sale's, do not matter to it. products_0008 keeps a version that
every such change bumps in its own transaction; an answer is reused only while the version read
with the page's rows (in the same statement, so the same snapshot) is still the one it was
computed at, so a reused answer is exactly what running the search again would give. The rows
themselves are always read fresh.

Bounded (`search_cache_size`; 0 keeps none): the oldest answer is dropped first. One process,
no locks (one event loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from services.products.settings import products_settings


@dataclass(frozen=True, slots=True)
class Answer:
    version: int  # products.search_version when it was computed
    ids: list[int]  # the page's product ids, in the page's order
    total: int


class Answers:
    def __init__(self, size: int) -> None:
        self.size = size
        self._answers: dict[Any, Answer] = {}

    def get(self, key: Any) -> Answer | None:
        return self._answers.get(key)

    def put(self, key: Any, answer: Answer) -> None:
        if self.size == 0:
            return
        self._answers.pop(key, None)
        if len(self._answers) >= self.size:
            del self._answers[next(iter(self._answers))]  # the oldest (insertion order)
        self._answers[key] = answer


@cache
def answers() -> Answers:
    """This process's answers (sized by its settings on first use)."""
    return Answers(products_settings().search_cache_size)
