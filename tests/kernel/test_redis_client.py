"""The kernel's Redis client queues callers when its pool is exhausted instead of failing."""

from __future__ import annotations

import asyncio

from stockmanager.service_app import redis_client


async def test_pool_exhaustion_waits_instead_of_raising(redis_url: str) -> None:
    client = redis_client(redis_url, max_connections=4)
    try:
        # 20 commands that each hold a connection for 0.2 s, through a pool of 4: with
        # redis-py's default pool the 5th raises "Too many connections".
        results = await asyncio.gather(
            *(client.blpop([f"sm-test-empty-{i}"], timeout=0.2) for i in range(20))
        )
    finally:
        await client.aclose()
    assert results == [None] * 20
