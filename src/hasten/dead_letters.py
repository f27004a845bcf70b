"""The dead-letter queue: jobs that failed for good, kept (bounded) to inspect and requeue.

```python
dead = queue.dead_letters
for letter in await dead.list(limit=20):          # newest first
    print(letter.id, letter.task, letter.reason, letter.error_message)
await dead.requeue("job-id")                      # run it again, as a new job with the same id
await dead.requeue()                              # every dead letter
await dead.purge()                                # forget them all
```
Workers put a job here when it exhausted its retries, raised a non-retryable error,
stalled too often, could not be decoded or verified, had invalid arguments, or named a
task no worker registered within the grace period. Size and age are capped per worker
(`Worker(dead_letter_max=..., dead_letter_age=...)`), oldest first out.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hasten.job import ms_to_datetime, parse_header
from hasten.protocol.connection import redis_errors
from hasten.protocol.scripts import SCRIPTS

if TYPE_CHECKING:
    from hasten.queue import Queue

__all__ = ["DeadLetter", "DeadLetters"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One failed job in the dead-letter queue."""

    id: str
    task: str | None
    reason: str
    """Machine-readable: ``retries_exhausted``, ``not_retryable``, ``exception``, ``stalled``,
    ``decode_error``, ``signature_invalid``, ``validation_error``, ``unknown_task``, ..."""
    error_type: str | None
    error_message: str | None
    traceback: str | None
    attempts: int
    priority: int
    enqueued_at: datetime | None
    failed_at: datetime | None


class DeadLetters:
    """The dead-letter queue of one `Queue` (``queue.dead_letters``)."""

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        self._keys = queue.keys

    async def count(self) -> int:
        async with redis_errors():
            return int(await self._queue.redis.zcard(self._keys.dlq))

    async def list(self, limit: int = 100, offset: int = 0) -> builtins.list[DeadLetter]:
        """Dead letters, newest first."""
        async with redis_errors():
            found: builtins.list[Any] = await self._queue.redis.zrange(
                self._keys.dlq, offset, offset + limit - 1, desc=True
            )
            return await self._load([bytes(i).decode() for i in found])

    async def get(self, job_id: str) -> DeadLetter | None:
        async with redis_errors():
            letters = await self._load([job_id])
        return letters[0] if letters else None

    async def requeue(self, job_id: str | None = None) -> int:
        """Put one dead letter (or, with no id, every one) back in the queue as a new job
        with the same id; returns how many. An id that is in use again is left alone."""
        return await self._act("requeue", job_id)

    async def purge(self, job_id: str | None = None) -> int:
        """Forget one dead letter (or, with no id, every one); returns how many."""
        return await self._act("purge", job_id)

    async def _act(self, action: str, job_id: str | None) -> int:
        async with redis_errors():
            return int(await SCRIPTS.dlq(self._queue.redis, self._keys.prefix, [action, job_id or ""]))

    async def _load(self, ids: builtins.list[str]) -> builtins.list[DeadLetter]:
        if not ids:
            return []
        pipe = self._queue.redis.pipeline(transaction=True)
        pipe.hmget(self._keys.dlq_records, ids)
        pipe.hmget(self._keys.dlq_bodies, ids)
        records, bodies = await pipe.execute()
        letters = []
        for job_id, record, body in zip(ids, records, bodies, strict=True):
            if record is None or body is None:
                continue
            info = self._queue.codec.unpack_record(record)
            priority, _, enqueued, payload = parse_header(body)
            letters.append(
                DeadLetter(
                    id=job_id,
                    task=info.get("t") or self._queue._peek_task(job_id, payload),
                    reason=str(info.get("r") or "failed"),
                    error_type=info.get("et"),
                    error_message=info.get("em"),
                    traceback=info.get("tb"),
                    attempts=int(info.get("a") or 0),
                    priority=priority,
                    enqueued_at=ms_to_datetime(enqueued),
                    failed_at=ms_to_datetime(info.get("ft")),
                )
            )
        return letters
