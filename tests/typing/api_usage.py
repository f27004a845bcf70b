"""Checked by mypy (make lint), never run: the public API as a user's type checker sees it.

Each `type: ignore[...]` marks a call that must be rejected; mypy's warn_unused_ignores
fails the build if one of them stops being an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from fastapi import Depends

from hasten import INJECTED, Job, JobContext, JobRequest, Progress, Queue, Task
from hasten.fastapi import QueueDep

queue = Queue("typing")


@queue.task(retries=5, timeout=30)
async def send_welcome(user_id: int, *, template: str = "welcome") -> str:
    return f"{user_id}:{template}"


@queue.task
def add(a: int, b: int) -> int:
    return a + b


@queue.task
async def with_context(n: int, ctx: JobContext[dict[str, str]] = INJECTED) -> None: ...


async def get_session() -> AsyncIterator[str]:
    yield "session"


@queue.task
async def with_dependencies(
    report_id: int,
    session: Annotated[str, Depends(get_session)] = INJECTED,
    q: QueueDep = INJECTED,
    progress: Progress = INJECTED,
) -> None: ...


async def usage() -> None:
    task: Task[[int], int] = add  # type: ignore[assignment]
    job: Job[str] = await send_welcome.enqueue(42)
    job = await send_welcome.enqueue(42, template="vip")
    job = await send_welcome.with_options(delay=timedelta(seconds=5), priority=3).enqueue(1)
    value: str = await job.result(timeout=1)
    total: Job[int] = await add.enqueue(1, 2)
    request: JobRequest[int] = add.prepare(1, 2)
    jobs: list[Job[int]] = await add.enqueue_many([request])
    await with_context.enqueue(1)
    await with_dependencies.enqueue(7)
    await with_dependencies.enqueue("7")  # type: ignore[arg-type]

    await send_welcome.enqueue("42")  # type: ignore[arg-type]
    await send_welcome.enqueue(42, templat="x")  # type: ignore[call-arg]
    await add.enqueue(1)  # type: ignore[call-arg]
    wrong: Job[str] = await add.enqueue(1, 2)  # type: ignore[assignment]
    del task, value, total, jobs, wrong
