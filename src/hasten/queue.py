"""The producer side: `Queue` registers tasks, enqueues jobs and looks them up."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from hasten.dead_letters import DeadLetters
from hasten.errors import ConfigurationError, DecodeError, PayloadTooLarge
from hasten.health import WorkerInfo, live_workers
from hasten.job import (
    Job,
    JobInfo,
    JobStatus,
    info_from_record,
    ms_to_datetime,
    parse_header,
    raise_for_record,
)
from hasten.options import DEFAULT_RESULT_TTL, TaskOptions
from hasten.protocol.connection import check_server, make_client, redis_errors
from hasten.protocol.keys import Keys
from hasten.protocol.scripts import SCRIPTS, pack_rows
from hasten.results import ResultWaiter
from hasten.serialization import Codec
from hasten.settings import Backoff, Settings
from hasten.task import JobRequest, Task

if TYPE_CHECKING:
    from hasten.middleware import Middleware
    from hasten.signature import TaskSignature

__all__ = ["Queue"]

P = ParamSpec("P")
R = TypeVar("R")
Lifespan = Callable[[], AbstractAsyncContextManager[Any]]

_CHUNK = 500
_UNSET: Any = object()


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class Queue:
    """A named queue in Redis: register tasks on it, enqueue jobs, look them up.

    ```python
    queue = Queue("emails")              # Redis from HASTEN_REDIS_URL, else localhost:6379/0

    @queue.task(retries=5, timeout=30)
    async def send_welcome(user_id: int, *, template: str = "welcome") -> str: ...

    async with queue:                    # connects, checks Redis, loads scripts
        job = await send_welcome.enqueue(42)
    ```
    ``lifespan`` is an async context manager factory run once per worker process; what it
    yields reaches tasks as ``JobContext.resources`` (and FastAPI dependencies through
    ``hasten.fastapi.get_resources``).
    """

    def __init__(
        self,
        name: str = "default",
        *,
        settings: Settings | None = None,
        redis_url: str | None = None,
        lifespan: Lifespan | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        settings = settings or Settings.from_env()
        if redis_url is not None:
            settings = settings.with_overrides(redis_url=redis_url)
        self.settings = settings
        self.keys = Keys.for_queue(name)
        self.codec = Codec(name, settings)
        self.lifespan = lifespan
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        """Replace FastAPI dependencies in this queue's workers (read when a worker starts)."""
        self._redis: Redis | None = None
        self._waiter: ResultWaiter | None = None

    @property
    def name(self) -> str:
        return self.keys.queue

    def __repr__(self) -> str:
        return f"<Queue {self.name} tasks={len(self.tasks)}>"

    # -- tasks ---------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        *,
        name: str = "",
        retries: int = 3,
        timeout: float | None = 300.0,
        backoff: Backoff | None = None,
        no_retry: tuple[type[BaseException], ...] = (),
        result_ttl: float = 3600.0,
        lease: float = 30.0,
        priority: int = 0,
    ) -> _TaskDecorator: ...

    def task(self, fn: Any = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Register a function (async or sync) as a task of this queue.

        Used bare (``@queue.task``) or with `TaskOptions` fields
        (``@queue.task(retries=5, timeout=30)``). Sync functions run in a thread pool.
        """
        if options.get("backoff") is None:
            options.pop("backoff", None)
        task_options = TaskOptions(**options)

        def register(fn: Callable[..., Any]) -> Task[Any, Any]:
            task: Task[Any, Any] = Task(self, fn, task_options)
            if task.name in self.tasks:
                raise ConfigurationError(f"task {task.name!r} is already registered on {self.name}")
            self.tasks[task.name] = task
            return task

        return register(fn) if fn is not None else register

    # -- connection ----------------------------------------------------------------------

    @property
    def redis(self) -> Redis:
        """The queue's Redis client (created on first use)."""
        if self._redis is None:
            self._redis = make_client(self.settings)
        return self._redis

    async def connect(self) -> Queue:
        """Connect, refuse an unsupported Redis, warn about unsafe settings, load scripts."""
        await check_server(self.redis)
        async with redis_errors():
            await SCRIPTS.load(self.redis)
        return self

    async def close(self) -> None:
        if self._waiter is not None:
            await self._waiter.close()
            self._waiter = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def __aenter__(self) -> Queue:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- enqueue -------------------------------------------------------------------------

    async def enqueue_many(self, requests: Iterable[JobRequest[R]]) -> list[Job[R]]:
        """Enqueue prepared calls (of any tasks of this queue) in pipelined chunks.

        Every payload is encoded and size-checked before anything is written. Jobs whose
        id exists already are returned as they are, never created twice.
        """
        jobs: list[Job[R]] = []
        rows: list[list[str | bytes | int]] = []
        for request in requests:
            job_id, row = self._encode(request)
            jobs.append(Job(self, job_id, request.task.signature))
            rows.append(row)
        if not jobs:
            return jobs
        chunks = [pack_rows(rows[i : i + _CHUNK]) for i in range(0, len(rows), _CHUNK)]
        # Each reply is bounded by the socket timeout; a batch that fails part way may
        # have written some chunks, so callers who retry should pass job ids.
        async with redis_errors():
            await self._run_enqueue(chunks)
        return jobs

    async def _run_enqueue(self, chunks: list[bytes]) -> None:
        if len(chunks) == 1:
            await SCRIPTS.enqueue(self.redis, self.keys.prefix, chunks)
            return
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            for chunk in chunks:
                SCRIPTS.enqueue.queue_in(pipe, self.keys.prefix, [chunk])
            try:
                await pipe.execute()
                return
            except NoScriptError:
                # Enqueue is idempotent by job id, so running every chunk again is safe.
                if attempt == 2:
                    raise
                await SCRIPTS.load(self.redis)

    def _encode(self, request: JobRequest[Any]) -> tuple[str, list[str | bytes | int]]:
        task, options = request.task, request.options
        if task.queue is not self:
            raise ConfigurationError(f"{task!r} belongs to queue {task.queue.name}, not {self.name}")
        job_id = options.job_id or secrets.token_urlsafe(9)
        overrides: dict[str, Any] = {}
        if options.retries is not None:
            overrides["r"] = options.retries
        if options.timeout is not None:
            overrides["t"] = options.timeout
        if options.result_ttl is not None:
            overrides["ttl"] = options.result_ttl
        if options.expires is not None:
            if isinstance(options.expires, (int, float)):
                overrides["x"] = int(options.expires * 1000)
            else:
                overrides["xa"] = int(options.expires.timestamp() * 1000)
        envelope = [task.name, request.arguments, overrides] if overrides else [task.name, request.arguments]
        payload = self.codec.seal(job_id, envelope)
        if len(payload) > self.codec.max_bytes:
            raise PayloadTooLarge(len(payload), self.codec.max_bytes)
        if options.delay is not None:
            due = f"+{int(options.delay * 1000)}" if options.delay > 0 else ""
        elif options.run_at is not None:
            due = str(int(options.run_at.timestamp() * 1000))
        else:
            due = ""
        priority = task.options.priority if options.priority is None else options.priority
        lease = task.options.lease if options.lease is None else options.lease
        return job_id, [job_id, payload, priority, due, int(lease * 1000)]

    # -- lookups -------------------------------------------------------------------------

    @property
    def dead_letters(self) -> DeadLetters:
        """Jobs that failed for good: list, inspect, requeue, purge."""
        return DeadLetters(self)

    async def workers(self) -> list[WorkerInfo]:
        """The workers serving this queue whose heartbeat has not run out."""
        return await live_workers(self)

    def job(self, job_id: str) -> Job[Any]:
        """A handle on an existing job by id."""
        return Job(self, job_id)

    async def _inspect(self, job_id: str) -> JobInfo:
        async with redis_errors():
            reply = await SCRIPTS.inspect(self.redis, self.keys.prefix, [job_id])
        state = reply[0].decode()
        if state == "none":
            return JobInfo(id=job_id, queue=self.name, status=JobStatus.NOT_FOUND)
        if state == "result":
            return info_from_record(job_id, self.name, self.codec.unpack_record(reply[1]))
        priority, _, enqueued, payload = parse_header(reply[1])
        task_name = self._peek_task(job_id, payload)
        if state == "running":
            _, worker, attempt, started = reply[2].decode().split("|")
            return JobInfo(
                id=job_id,
                queue=self.name,
                status=JobStatus.RUNNING,
                task=task_name,
                attempts=int(attempt),
                priority=priority,
                enqueued_at=ms_to_datetime(enqueued),
                started_at=ms_to_datetime(started),
                worker_id=worker,
            )
        attempts = int(reply[2])
        if state == "scheduled":
            status = JobStatus.RETRYING if attempts else JobStatus.SCHEDULED
            scheduled = ms_to_datetime(reply[3].decode())
        else:
            status, scheduled = JobStatus.QUEUED, None
        return JobInfo(
            id=job_id,
            queue=self.name,
            status=status,
            task=task_name,
            attempts=attempts,
            priority=priority,
            enqueued_at=ms_to_datetime(enqueued),
            scheduled_at=scheduled,
        )

    def _peek_task(self, job_id: str, payload: bytes) -> str | None:
        try:
            envelope = self.codec.open(job_id, payload)
            return str(envelope[0])
        except (DecodeError, IndexError, TypeError, KeyError):
            return None

    async def _abort(self, job_id: str) -> bool:
        async with redis_errors():
            outcome = await SCRIPTS.abort(
                self.redis, self.keys.prefix, [job_id, int(DEFAULT_RESULT_TTL * 1000)]
            )
        return bool(outcome)

    async def _wait_for_record(self, job_id: str, timeout: float | None) -> bytes | None:
        if self._waiter is None:
            self._waiter = ResultWaiter(self.redis, self.keys)
        return await self._waiter.wait(job_id, timeout)

    def _decode_result(self, job_id: str, data: bytes, signature: TaskSignature | None) -> Any:
        record = self.codec.unpack_record(data)
        raise_for_record(job_id, record)
        value = self.codec.open(job_id, record["v"]) if record.get("v") is not None else None
        if signature is None and (task := self.tasks.get(record.get("t") or "")):
            signature = task.signature
        return signature.load_result(value) if signature is not None else value
