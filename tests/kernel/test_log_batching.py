"""stdout log lines are batched on the event loop (stockmanager/logs.py BatchedStreamHandler):
in order, never lost, and warnings or lines from outside a loop are written at once."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from stockmanager.logs import BatchedStreamHandler, JsonFormatter


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, BatchedStreamHandler]]:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, delay=0.02)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("tests.kernel.log_batching")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    logger.handlers[:] = []


def messages(stream: io.StringIO) -> list[str]:
    return [orjson.loads(line)["msg"] for line in stream.getvalue().splitlines()]


def test_without_a_running_loop_every_line_is_written_at_once(
    logged: tuple[logging.Logger, io.StringIO, BatchedStreamHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("one")
    assert messages(stream) == ["one"]


async def test_on_the_loop_lines_wait_for_the_timer_and_keep_their_order(
    logged: tuple[logging.Logger, io.StringIO, BatchedStreamHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("first")
    logger.info("second")
    assert messages(stream) == []  # batched
    async with asyncio.timeout(10):
        while messages(stream) != ["first", "second"]:  # noqa: ASYNC110 - the timer writes them
            await asyncio.sleep(0.005)


async def test_a_warning_is_written_at_once_with_the_lines_before_it(
    logged: tuple[logging.Logger, io.StringIO, BatchedStreamHandler],
) -> None:
    logger, stream, handler = logged
    logger.info("queued")
    logger.warning("urgent")
    assert messages(stream) == ["queued", "urgent"]
    logger.info("later")
    handler.flush()  # what logging.shutdown() does at exit
    assert messages(stream) == ["queued", "urgent", "later"]


async def test_a_full_batch_is_written_without_waiting(
    logged: tuple[logging.Logger, io.StringIO, BatchedStreamHandler],
) -> None:
    logger, stream, handler = logged
    for n in range(handler.max_lines):
        logger.info(str(n))
    assert messages(stream) == [str(n) for n in range(handler.max_lines)]
