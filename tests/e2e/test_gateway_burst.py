"""A burst of concurrent requests at one gateway must queue, never fail."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.support.stack import Stack


async def test_250_concurrent_requests_all_succeed(stack: Stack) -> None:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=60) as client:
        login = await client.post(
            "/api/login", json={"username": "root", "password": stack.root_password}
        )
        assert login.status_code == 200
        responses = await asyncio.gather(
            *(client.get("/api/session") for _ in range(250)),
            *(client.get("/api/users") for _ in range(50)),
        )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == Counter({200: 300}), statuses
