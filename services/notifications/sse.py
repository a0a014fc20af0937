"""The Server-Sent Events response of `GET /api/notifications/stream`.

A plain ASGI response (no generator hidden in a StreamingResponse) so that the subscription's
lifetime is one `try/finally`: the stream registers with the hub, sends `init`, then forwards
every `update` frame the hub hands it and a `: heartbeat` comment after each quiet interval.
A task watches the ASGI `receive` channel, and the moment the client (or the gateway) hangs up
it cancels the loop; the subscription is always released, whatever ended the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.notifications.fanout import NotificationHub, Subscription

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
HEARTBEAT = b": heartbeat\n\n"


def sse_frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStreamResponse(Response):
    def __init__(
        self,
        hub: NotificationHub,
        user_id: int,
        initial_frame: Callable[[], Awaitable[bytes]],
        *,
        heartbeat: float,
        max_lifetime: float,
    ) -> None:
        self.hub = hub
        self.user_id = user_id
        self.initial_frame = initial_frame
        self.heartbeat = heartbeat
        self.max_lifetime = max_lifetime
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)  # no body: no content-length, the stream is open-ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Subscribe before reading the initial state, so no change can fall in between.
        subscription = self.hub.subscribe(self.user_id)
        try:
            first = await self.initial_frame()  # a failure here is still a clean JSON error
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                with contextlib.suppress(OSError, ClientDisconnect):
                    await self._stream(send, subscription, first)
                group.cancel_scope.cancel()
        finally:
            self.hub.unsubscribe(subscription)

    async def _stream(self, send: Send, subscription: Subscription, first: bytes) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.max_lifetime if self.max_lifetime > 0 else None
        while not subscription.closed:
            wait = self.heartbeat
            if ends_at is not None:
                wait = min(wait, ends_at - loop.time())
                if wait <= 0:
                    break
            try:
                async with asyncio.timeout(wait):
                    await subscription.changed.wait()
            except TimeoutError:
                if ends_at is not None and loop.time() >= ends_at:
                    break
                await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
                continue
            frame = subscription.take()
            if frame is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
