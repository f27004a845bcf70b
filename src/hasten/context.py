"""What a running job can know about itself: `JobContext`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

__all__ = ["INJECTED", "JobContext"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class JobContext(Generic[R]):
    """Injected into a task parameter annotated ``JobContext[...]``.

    ```python
    @queue.task()
    async def import_rows(path: str, ctx: JobContext[Resources] = INJECTED) -> int:
        async with ctx.resources.db.begin() as tx:   # created once per worker by the lifespan
            ...
        log.info("attempt %d of job %s", ctx.attempt, ctx.job_id)
    ```
    The ``= INJECTED`` default keeps the parameter out of ``enqueue()``'s signature for
    type checkers; the worker always fills it in.
    """

    job_id: str
    task: str
    queue: str
    attempt: int
    """1 on the first run, 2 on the first retry, and so on."""
    enqueued_ms: int
    """When the job was enqueued, in milliseconds since the epoch on Redis's clock."""
    worker_id: str
    resources: R
    """What the queue's worker lifespan yielded (None without a lifespan)."""

    @property
    def enqueued_at(self) -> datetime:
        return datetime.fromtimestamp(self.enqueued_ms / 1000, tz=UTC)


INJECTED: Any = object()
"""Default for a parameter the worker fills in (a `JobContext`, a `Progress`, or a FastAPI
``Depends``): it keeps the parameter out of ``enqueue()``'s signature for type checkers."""
