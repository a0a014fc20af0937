"""A service process killed mid-request resets the gateway's connection: a JSON 503, not a 500.

The gateway keeps keep-alive connections to every replica; `kill -9` of a service (issue 18)
makes the kernel reset them. A write may have reached the service, so it is not retried (503,
the client retries with its Idempotency-Key); a read goes to the next replica.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.proxy import ServiceProxy
from stockmanager.errors import ServiceUnavailable


async def resetting_server() -> tuple[asyncio.Server, str]:
    """Reads a request, then resets the connection (what a killed process's kernel does)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[str, str]]:
    reset_server, reset_url = await resetting_server()

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/api/sales", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield reset_url, f"http://127.0.0.1:{port}"
    finally:
        reset_server.close()
        await reset_server.wait_closed()
        await runner.cleanup()


def proxy_for(*urls: str) -> ServiceProxy:
    return ServiceProxy(
        {"sales": list(urls)},
        timeout=10,
        connect_timeout=2,
        down_seconds=5,
        pool_limit=10,
        dns_refresh=0,
    )


async def test_a_reset_write_is_a_503_and_not_retried(replicas: tuple[str, str]) -> None:
    resetting, _ = replicas
    proxy = proxy_for(resetting)
    await proxy.open()
    try:
        with pytest.raises(ServiceUnavailable):
            await proxy.forward("sales", "POST", "/api/sales", {}, b'{"quantity": 1}')
    finally:
        await proxy.close()


async def test_a_reset_read_is_retried_on_the_next_replica(replicas: tuple[str, str]) -> None:
    resetting, healthy = replicas
    proxy = proxy_for(resetting, healthy)
    await proxy.open()
    try:
        answer = await proxy.forward("sales", "GET", "/api/sales", {}, b"")
        assert answer.status == 200 and answer.body == b'{"ok": true}'
        assert answer.replica == healthy
    finally:
        await proxy.close()
