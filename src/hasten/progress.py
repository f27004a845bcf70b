"""Progress a running job reports, and what `Job.progress()` reads back.

```python
@queue.task()
async def import_rows(path: str, progress: Progress = INJECTED) -> int:
    for i, row in enumerate(rows):
        ...
        progress.update(i / len(rows), f"row {i}", {"imported": i})   # cheap: coalesced
```
Updates are merged locally and written at most every `INTERVAL_S` (and once more when the
job ends), so a tight loop costs a handful of Redis writes, not one per call. Sync tasks
may call `update` from their thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hasten.errors import ArgumentError, RedisError
from hasten.job import ms_to_datetime
from hasten.protocol.connection import redis_errors

if TYPE_CHECKING:
    from hasten.queue import Queue

__all__ = [
    "INTERVAL_S",
    "MAX_DATA_BYTES",
    "Progress",
    "ProgressInfo",
    "progress_from_record",
    "read_progress",
]

log = logging.getLogger("hasten.progress")

INTERVAL_S = 0.2
"""Longest a progress update waits before it is written."""

MAX_DATA_BYTES = 16 * 1024
"""Progress data is for small facts (counts, a current item), not results."""


@dataclass(frozen=True, slots=True)
class ProgressInfo:
    """A job's last reported progress."""

    fraction: float | None
    message: str | None
    data: dict[str, Any] | None
    updated_at: datetime | None


class Progress:
    """Injected into a task parameter annotated ``Progress`` (also ``ctx.progress``)."""

    def __init__(self, queue: Queue, job_id: str, ttl_s: float) -> None:
        self._queue = queue
        self._job_id = job_id
        self._ttl_ms = int(ttl_s * 1000)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._state: dict[str, Any] = {}
        self._dirty = False
        self._scheduled = False
        self._last_write = 0.0
        self._writing: asyncio.Future[None] | None = None

    def update(
        self, fraction: float | None = None, message: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Report progress; fields left out keep their last value."""
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ArgumentError("progress fraction must be between 0 and 1")
        if data is not None:
            _check_data(data)
        change = {k: v for k, v in (("f", fraction), ("m", message), ("d", data)) if v is not None}
        if threading.get_ident() == self._thread:
            self._merge(change)
        else:
            self._loop.call_soon_threadsafe(self._merge, change)

    def _merge(self, change: dict[str, Any]) -> None:
        self._state.update(change)
        self._dirty = True
        if not self._scheduled:
            self._scheduled = True
            delay = max(0.0, self._last_write + INTERVAL_S - time.monotonic())
            self._loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        self._scheduled = False
        self._writing = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self._last_write = time.monotonic()
        keys = self._queue.keys
        record = self._queue.codec.pack_record({**self._state, "t": int(time.time() * 1000)})
        try:
            async with redis_errors():
                pipe = self._queue.redis.pipeline(transaction=False)
                pipe.set(keys.progress(self._job_id), record, px=self._ttl_ms)
                pipe.publish(keys.progress(self._job_id), record)
                await pipe.execute()
        except RedisError as exc:
            log.warning("cannot record progress of job %s (%s)", self._job_id, exc)

    async def close(self) -> None:
        """Write what is still pending (the job is ending)."""
        if self._writing is not None:
            await self._writing
        await self._write()


def _check_data(data: dict[str, Any]) -> None:
    try:
        size = len(json.dumps(data, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"progress data must be a JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise ArgumentError("progress data must be a JSON object (a dict)")
    if size > MAX_DATA_BYTES:
        raise ArgumentError(f"progress data is {size} bytes as JSON; the limit is {MAX_DATA_BYTES}")


async def read_progress(queue: Queue, job_id: str) -> ProgressInfo | None:
    async with redis_errors():
        data: Any = await queue.redis.get(queue.keys.progress(job_id))
    if data is None:
        return None
    return progress_from_record(queue.codec.unpack_record(data))


def progress_from_record(record: dict[str, Any]) -> ProgressInfo:
    """What a progress write (the key, or a message on its channel) holds."""
    return ProgressInfo(
        fraction=record.get("f"),
        message=record.get("m"),
        data=record.get("d"),
        updated_at=ms_to_datetime(record.get("t")),
    )
