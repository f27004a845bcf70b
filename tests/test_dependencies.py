"""FastAPI ``Depends`` resolved inside jobs by a real worker on a real Redis."""

# No `from __future__ import annotations`: tasks here use dependencies defined in the test
# body, which string annotations could not find (FastAPI has the same rule).
import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from fastapi import Depends, Header, Query, Request

from hasten import (
    INJECTED,
    ArgumentError,
    Backoff,
    ConfigurationError,
    JobAborted,
    JobContext,
    JobFailed,
    JobStatus,
    Progress,
    Queue,
    Worker,
)
from hasten.fastapi import QueueDep, get_resources
from tests.conftest import wait_for_status


@dataclass
class Pool:
    """Stands in for a DB engine: made once per worker, shared by every job."""

    opened: int = 0
    log: list[str] = field(default_factory=list)


@dataclass
class Session:
    pool: Pool
    number: int
    closed_with: str | None = None


def make_queue(redis_url: str, queue_name: str, pool: Pool) -> Queue:
    @asynccontextmanager
    async def resources() -> AsyncIterator[Pool]:
        pool.opened += 1
        yield pool
        pool.log.append("pool closed")

    return Queue(queue_name, redis_url=redis_url, lifespan=resources)


def get_pool(pool: Annotated[Pool, Depends(get_resources)]) -> Pool:
    return pool


async def get_session(pool: Annotated[Pool, Depends(get_pool)]) -> AsyncIterator[Session]:
    """A yield dependency, as an app's `get_db` is: commit on success, roll back on error."""
    session = Session(pool, number=len(pool.log))
    pool.log.append(f"open {session.number}")
    try:
        yield session
    except BaseException as exc:
        pool.log.append(f"rollback {session.number}: {type(exc).__name__}")
        raise
    else:
        pool.log.append(f"commit {session.number}")


SessionDep = Annotated[Session, Depends(get_session)]


async def test_injected_parameters_resolve_from_the_worker_lifespan(
    redis_url: str, queue_name: str, start_worker: Callable[..., Any]
) -> None:
    pool = Pool()
    queue = make_queue(redis_url, queue_name, pool)

    async def repository(session: SessionDep) -> tuple[int, int]:
        return (id(session), session.number)

    @queue.task()
    async def save(
        user_id: int,
        session: SessionDep = INJECTED,
        repo: Annotated[tuple[int, int], Depends(repository)] = INJECTED,
        plain_style: Session = Depends(get_session),  # noqa: B008  (FastAPI's older style)
    ) -> dict[str, Any]:
        return {
            "user": user_id,
            "shared": id(session) == repo[0] == id(plain_style),
            "session": session.number,
        }

    async with queue, start_worker(queue):
        first = await save.enqueue(1)
        assert await first.result(timeout=10) == {"user": 1, "shared": True, "session": 0}
        second = await save.enqueue(2)
        assert (await second.result(timeout=10))["session"] == 2
    assert pool.opened == 1, "the worker lifespan ran once for both jobs"
    assert pool.log == ["open 0", "commit 0", "open 2", "commit 2", "pool closed"]


async def test_injected_parameters_are_not_part_of_enqueue(queue: Queue) -> None:
    @queue.task()
    async def save(user_id: int, session: SessionDep = INJECTED) -> None: ...

    with pytest.raises(ArgumentError, match="session"):
        await save.enqueue(1, session="forged")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        await save.enqueue(1, "forged")  # type: ignore[call-arg]


async def test_use_cache_false_resolves_again_within_one_job(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    @queue.task()
    async def count(
        a: Annotated[int, Depends(counter)] = INJECTED,
        b: Annotated[int, Depends(counter)] = INJECTED,
        c: Annotated[int, Depends(counter, use_cache=False)] = INJECTED,
    ) -> list[int]:
        return [a, b, c]

    async with start_worker(queue):
        assert await (await count.enqueue()).result(timeout=10) == [1, 1, 2]
        assert await (await count.enqueue()).result(timeout=10) == [3, 3, 4], "the cache is per job"


async def test_cleanup_runs_when_the_job_fails_and_sees_its_error(
    redis_url: str, queue_name: str, start_worker: Callable[..., Any]
) -> None:
    pool = Pool()
    queue = make_queue(redis_url, queue_name, pool)

    @queue.task(retries=0)
    async def broken(session: SessionDep = INJECTED) -> None:
        raise LookupError("no such user")

    async with queue, start_worker(queue):
        job = await broken.enqueue()
        with pytest.raises(JobFailed) as failure:
            await job.result(timeout=10)
    assert failure.value.error_type == "LookupError"
    assert pool.log[:2] == ["open 0", "rollback 0: LookupError"]


async def test_cleanup_runs_when_the_job_is_aborted_or_times_out(
    redis_url: str, queue_name: str, start_worker: Callable[..., Any]
) -> None:
    pool = Pool()
    queue = make_queue(redis_url, queue_name, pool)
    started = asyncio.Event()

    @queue.task(retries=0, timeout=0.5)
    async def slow(hold: bool, session: SessionDep = INJECTED) -> None:
        started.set()
        await asyncio.sleep(3600)

    async with queue, start_worker(queue):
        aborted = await slow.with_options(timeout=3600).enqueue(True)
        await started.wait()
        await wait_for_status(aborted, JobStatus.RUNNING)
        await aborted.abort()
        with pytest.raises(JobAborted):
            await aborted.result(timeout=10)
        timed_out = await slow.enqueue(False)
        with pytest.raises(JobFailed, match="timed out"):
            await timed_out.result(timeout=10)
    assert pool.log[:4] == ["open 0", "rollback 0: CancelledError", "open 2", "rollback 2: CancelledError"]


async def test_a_cleanup_that_swallows_the_error_does_not_make_the_job_complete(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    async def forgiving() -> AsyncIterator[None]:
        try:  # noqa: SIM105  (a dependency that forgets to re-raise)
            yield
        except Exception:
            pass

    @queue.task(retries=0)
    async def broken(_: Annotated[None, Depends(forgiving)] = INJECTED) -> None:
        raise ValueError("still failed")

    async with start_worker(queue):
        with pytest.raises(JobFailed, match="still failed"):
            await (await broken.enqueue()).result(timeout=10)


async def test_a_cleanup_error_fails_the_job(queue: Queue, start_worker: Callable[..., Any]) -> None:
    async def committing() -> AsyncIterator[None]:
        yield
        raise ConnectionError("commit failed")

    @queue.task(retries=0)
    async def write(_: Annotated[None, Depends(committing)] = INJECTED) -> str:
        return "written"

    async with start_worker(queue):
        with pytest.raises(JobFailed, match="commit failed"):
            await (await write.enqueue()).result(timeout=10)


async def test_sync_dependencies_run_in_the_worker_threads(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    events: list[str] = []
    loop_thread = threading.get_ident()

    def sync_value() -> bool:
        return threading.get_ident() != loop_thread

    def sync_resource() -> Iterator[str]:
        events.append(f"enter in thread: {threading.get_ident() != loop_thread}")
        yield "resource"
        events.append(f"exit in thread: {threading.get_ident() != loop_thread}")

    class Service:
        def __init__(self, value: Annotated[bool, Depends(sync_value)]) -> None:
            self.value = value

    @queue.task()
    def sync_job(
        in_thread: Annotated[bool, Depends(sync_value)] = INJECTED,
        resource: Annotated[str, Depends(sync_resource)] = INJECTED,
        service: Annotated[Service, Depends()] = INJECTED,
    ) -> list[Any]:
        return [in_thread, resource, service.value]

    async with start_worker(queue):
        assert await (await sync_job.enqueue()).result(timeout=10) == [True, "resource", True]
    assert events == ["enter in thread: True", "exit in thread: True"]


async def test_dependencies_can_use_the_job_context_progress_and_queue(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    def job_label(ctx: JobContext[None], progress: Progress) -> str:
        progress.update(0.5, "labelled")
        return f"{ctx.task}#{ctx.attempt}"

    @queue.task(name="label")
    async def label(text: Annotated[str, Depends(job_label)] = INJECTED, q: QueueDep = INJECTED) -> list[str]:
        return [text, q.name]

    async with start_worker(queue):
        job = await label.enqueue()
        assert await job.result(timeout=10) == ["label#1", queue.name]
        progress = await job.progress()
        assert progress is not None and progress.message == "labelled"


async def test_a_failing_dependency_fails_the_job_like_the_task_would(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    attempts: list[int] = []

    def flaky(ctx: JobContext[None]) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            raise ConnectionError("database restarting")
        return "connected"

    @queue.task(retries=2, backoff=Backoff(base=0.05, jitter=0))
    async def use(conn: Annotated[str, Depends(flaky)] = INJECTED) -> str:
        return conn

    async with start_worker(queue):
        assert await (await use.enqueue()).result(timeout=10) == "connected"
    assert attempts == [1, 2]


def current_user(request: Request) -> str:
    return request.headers.get("x-user", "")


def page_size(limit: int = Query(20)) -> int:
    return limit


def tenant(x_tenant: Annotated[str, Header()]) -> str:
    return x_tenant


async def test_web_only_dependencies_are_rejected_when_the_worker_starts(
    queue: Queue, hasten_warnings: list[str]
) -> None:
    def audit(user: Annotated[str, Depends(current_user)]) -> str:
        return user

    @queue.task(name="notify")
    async def notify(who: Annotated[str, Depends(audit)] = INJECTED) -> None: ...

    @queue.task(name="listing")
    async def listing(size: Annotated[int, Depends(page_size)] = INJECTED) -> None: ...

    @queue.task(name="billing")
    async def billing(org: Annotated[str, Depends(tenant)] = INJECTED) -> None: ...

    worker = Worker(queue, handle_signals=False, check_redis=False)
    with pytest.raises(ConfigurationError) as refused:
        await asyncio.wait_for(worker.run(), 10)
    message = str(refused.value)
    assert "task notify, parameter 'who'" in message
    assert "audit -> current_user needs a Request (parameter 'request')" in message
    assert "task listing, parameter 'size'" in message and "page_size reads request data" in message
    assert "task billing, parameter 'org'" in message and "x_tenant" in message
    assert "dependency_overrides" in message, "the error says how to fix it"


async def test_dependency_overrides_replace_a_dependency_in_workers(
    queue: Queue, start_worker: Callable[..., Any]
) -> None:
    @queue.task()
    async def whoami(user: Annotated[str, Depends(current_user)] = INJECTED) -> str:
        return user

    def user_of_the_job(ctx: JobContext[None]) -> str:
        return f"system:{ctx.task.rsplit('.', 1)[-1]}"

    queue.dependency_overrides[current_user] = user_of_the_job
    async with start_worker(queue):
        assert await (await whoami.enqueue()).result(timeout=10) == "system:whoami"


def test_injected_default_without_anything_to_inject_is_a_configuration_error(queue: Queue) -> None:
    with pytest.raises(ConfigurationError, match="'user_id' defaults to INJECTED"):

        @queue.task()
        async def wrong(user_id: int = INJECTED) -> None: ...


async def test_a_dependency_cycle_is_a_configuration_error(queue: Queue) -> None:
    def loops(again: Annotated[str, Depends(lambda: "")]) -> str:
        return again

    again = Annotated[str, Depends(loops)]  # a function cannot name itself in its own signature
    loops.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("again", inspect.Parameter.KEYWORD_ONLY, annotation=again)]
    )

    @queue.task(name="cyclic")
    async def cyclic(value: Annotated[str, Depends(loops)] = INJECTED) -> None: ...

    worker = Worker(queue, handle_signals=False, check_redis=False)
    with pytest.raises(ConfigurationError, match="loops -> loops depends on itself"):
        await asyncio.wait_for(worker.run(), 10)
