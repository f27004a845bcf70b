"""A registered task: `Task`, typed by its function's signature, and `JobRequest`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from hasten.options import EnqueueOptions, TaskOptions
from hasten.signature import TaskSignature

if TYPE_CHECKING:
    from hasten.job import Job
    from hasten.queue import Queue

__all__ = ["JobRequest", "Task"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class JobRequest(Generic[R]):
    """A validated call of a task, not yet enqueued; made by `Task.prepare()`."""

    task: Task[Any, R]
    arguments: dict[str, Any]
    options: EnqueueOptions


class Task(Generic[P, R]):
    """A function registered on a queue with `Queue.task()`.

    ```python
    job = await send_welcome.enqueue(42, template="vip")           # checked against the signature
    job = await send_welcome.with_options(delay=60, priority=5).enqueue(42)
    jobs = await send_welcome.enqueue_many(send_welcome.prepare(i) for i in user_ids)
    await send_welcome(42)                                           # runs it here, now
    ```
    """

    __slots__ = ("_call_options", "fn", "is_async", "name", "options", "queue", "signature")

    def __init__(
        self,
        queue: Queue,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        options: TaskOptions,
        signature: TaskSignature | None = None,
        call_options: EnqueueOptions | None = None,
    ) -> None:
        self.queue = queue
        self.fn = fn
        self.options = options
        self.name = options.name or f"{fn.__module__}.{fn.__qualname__}"
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = signature or TaskSignature(fn)
        self._call_options = call_options or EnqueueOptions()

    def __repr__(self) -> str:
        return f"<Task {self.name} on {self.queue.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R] | R:
        """Call the function directly, in this process (handy in tests)."""
        return self.fn(*args, **kwargs)

    def with_options(
        self,
        *,
        job_id: str | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        expires: float | timedelta | datetime | None = None,
        retries: int | None = None,
        timeout: float | timedelta | None = None,
        result_ttl: float | timedelta | None = None,
        lease: float | timedelta | None = None,
    ) -> Task[P, R]:
        """This task with per-call options for the jobs it enqueues.

        ``job_id`` makes enqueue idempotent: an id that exists returns the existing job.
        ``delay``/``run_at`` schedule it (on Redis's clock; ``run_at`` must be timezone-aware);
        ``priority`` (higher first) orders it; ``expires`` (seconds from enqueue, or an aware
        datetime) ends it unstarted; the rest override the task's options.
        """
        given = EnqueueOptions.build(
            job_id=job_id,
            delay=delay,
            run_at=run_at,
            priority=priority,
            expires=expires,
            retries=retries,
            timeout=timeout,
            result_ttl=result_ttl,
            lease=lease,
        )
        return Task(self.queue, self.fn, self.options, self.signature, self._call_options.merged(given))

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> JobRequest[R]:
        """Validate a call now and return it for `enqueue_many`."""
        return JobRequest(self, self.signature.dump_arguments(args, kwargs), self._call_options)

    def prepare_from(self, arguments: Mapping[str, Any]) -> JobRequest[R]:
        """Validate arguments given as a mapping of parameter names (a JSON body, say)."""
        return JobRequest(self, self.signature.dump_named(arguments), self._call_options)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Validate the call against the signature, then enqueue one job."""
        (job,) = await self.queue.enqueue_many([self.prepare(*args, **kwargs)])
        return job

    async def enqueue_many(self, requests: Iterable[JobRequest[R]]) -> list[Job[R]]:
        """Enqueue many prepared calls in pipelined chunks; returns their jobs in order."""
        return await self.queue.enqueue_many(requests)

    def job(self, job_id: str) -> Job[R]:
        """A handle on an existing job of this task, with a typed `result()`."""
        from hasten.job import Job

        return Job(self.queue, job_id, self.signature)
