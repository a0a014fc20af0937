"""JSON logging with the request id on every line, and the central log stream.

Each process logs one JSON object per line to stdout. A `CentralLogShipper` also copies every
record to a capped Redis stream so that `/api/debug/logs` can show the newest lines of all
processes; shipping never blocks the caller (records go through a bounded in-memory queue and are
dropped, not waited for, when Redis is slow or down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from stockmanager.context import request_id_var
from stockmanager.contracts.fields import clip_text

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn adds an ANSI-coloured duplicate of msg
}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        # stdout and the central shipper both format each record: do the work once.
        cached: str | None = getattr(record, "_sm_json", None)
        if cached is not None:
            return cached
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        text = orjson.dumps(entry, default=str).decode()
        record._sm_json = text
        return text


LINE_MAX_CHARS = 8192
"""Longest line (JSON text) copied to the central stream: with the stream's MAXLEN (default
1000 lines) this bounds its memory (8192 characters are at most 32 KiB of UTF-8 per line)."""

FIELD_MAX_CHARS = 2000
"""Each text field of an over-long line is clipped to this (tracebacks, long messages)."""


def clip_line(line: str, limit: int = LINE_MAX_CHARS) -> str:
    """`line` (one JSON log entry) when it is short enough, else the same entry with its long
    text fields clipped and `"clipped": true`; still valid JSON and at most `limit` characters."""
    if len(line) <= limit:
        return line
    entry = orjson.loads(line)
    clipped: dict[str, Any] = {}
    for key, value in entry.items():
        text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        clipped[clip_text(key, 100)] = (
            clip_text(text, FIELD_MAX_CHARS) if len(text) > FIELD_MAX_CHARS else value
        )
    clipped["clipped"] = True
    text = orjson.dumps(clipped).decode()
    if len(text) <= limit:
        return text
    # Many long fields: keep what identifies the line.
    keep = ("ts", "level", "process", "logger", "msg", "request_id")
    return orjson.dumps({k: clipped[k] for k in keep if k in clipped} | {"clipped": True}).decode()


class CentralLogShipper(logging.Handler):
    """Copies formatted records to the central Redis stream without blocking the logger.

    Bounded at every step: the queue by count (records beyond it are dropped), each line by
    `clip_line`, the stream by MAXLEN."""

    def __init__(self, stream: str, maxlen: int, queue_size: int = 1000) -> None:
        super().__init__()
        self.stream = stream
        self.maxlen = maxlen
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("uvicorn.access", "redis")):
            return
        with contextlib.suppress(asyncio.QueueFull, RuntimeError):
            self.queue.put_nowait(clip_line(self.format(record)))

    def start(self, redis: Redis) -> None:
        self._task = asyncio.get_running_loop().create_task(self._ship(redis), name="log-shipper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        # redis-py (8.1) can swallow a cancellation that lands inside pipeline.execute(): the
        # flag ends the loop then, and the bounded wait means shutdown never hangs on logs.
        await asyncio.wait({task}, timeout=2.0)

    async def _ship(self, redis: Redis) -> None:
        while not self._stopping:
            line = await self.queue.get()
            batch = [line]
            while not self.queue.empty() and len(batch) < 200:
                batch.append(self.queue.get_nowait())
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for item in batch:
                        pipe.xadd(self.stream, {"line": item}, maxlen=self.maxlen, approximate=True)
                    await pipe.execute()
            except Exception:  # noqa: BLE001 - Redis down: drop the batch, never crash the app
                await asyncio.sleep(1.0)
                continue
            # Let lines accumulate: under load one write carries many lines instead of one
            # write per request (the central log is for people, 100 ms late is fine).
            await asyncio.sleep(0.1)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stdout lines written in batches: one write (and one wake-up of whoever reads the pipe,
    e.g. `stockmanager up`'s supervisor) per `delay` seconds instead of one per record, which
    was a system call per request in every process (its access line).

    Only lines logged on a thread running an event loop wait, at most `delay`; WARNING and
    above, anything logged without a running loop (start-up, shutdown, other threads) and a
    full batch go out at once together with what is waiting. `logging.shutdown()` at exit
    flushes the rest."""

    def __init__(self, stream: Any = None, *, delay: float = 0.05, max_lines: int = 256) -> None:
        super().__init__(stream)
        self.delay = delay
        self.max_lines = max_lines
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._pending) >= self.max_lines:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._flush_later)

    def _flush_later(self) -> None:
        self.acquire()
        try:
            self._timer = None
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a closed stdout must not break the process
            pass

    def flush(self) -> None:
        self.acquire()
        try:
            if self._timer is not None:
                with contextlib.suppress(Exception):  # its loop may be closed (at exit)
                    self._timer.cancel()
                self._timer = None
            self._write_pending()
        finally:
            self.release()


def configure_logging(process_name: str, level: str = "INFO") -> None:
    # Nothing we write reads the caller's file/line/function, thread or process fields
    # (JsonFormatter skips them), so the logging module need not collect them for every record:
    # the frame walk alone was a quarter of an access line's cost (the logging HOWTO's
    # "Optimization" section names these switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access lines come from our own middleware (with request id and latency).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def attach_central_shipper(process_name: str, stream: str, maxlen: int) -> CentralLogShipper:
    shipper = CentralLogShipper(stream, maxlen)
    shipper.setFormatter(JsonFormatter(process_name))
    logging.getLogger().addHandler(shipper)
    return shipper


def detach_central_shipper(shipper: CentralLogShipper) -> None:
    logging.getLogger().removeHandler(shipper)
