"""The cyclic garbage collector, tuned for a long-running request server.

A request allocates hundreds to thousands of short-lived container objects (Starlette's and
FastAPI's request objects, dependency results, aiohttp's request and response, rows), so with
CPython's default young-generation threshold (700 allocations) the collector ran every few
requests, and each older-generation pass traversed every object of the process: modules, the
app, SQLAlchemy, aiohttp, well over 100,000 at start. Objects alive once a process has started
live as long as it does: `gc.freeze()` takes them out of every collection, and the young
generation is collected every `YOUNG_THRESHOLD` allocations instead. Garbage without cycles is
freed by reference counting as before; only the cadence of the cycle collector changes.
Measured: services/webhooks, one delivery attempt ~155 -> ~105 us of CPU (GC ~45 -> ~1.3 us).
"""

from __future__ import annotations

import gc

# Container allocations (minus deallocations) between two young-generation collections.
YOUNG_THRESHOLD = 7000


def freeze_after_startup() -> None:
    """Call once, when the process has built everything it keeps (the lifespan's start)."""
    gc.collect()  # start-up garbage is freed, not frozen with the rest
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
