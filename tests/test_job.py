from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from hasten import JobAborted, JobFailed, JobNotFound, JobStatus, Queue, ResultTimeout


class Receipt(BaseModel):
    total: int
    items: list[str]


async def test_result_is_typed_by_the_return_annotation(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def checkout(items: list[str]) -> Receipt:
        return Receipt(total=len(items), items=items)

    async with start_worker(queue):
        job = await checkout.enqueue(["a", "b"])
        receipt = await job.result(timeout=10)
    assert receipt == Receipt(total=2, items=["a", "b"])
    info = await job.info()
    assert info.status is JobStatus.COMPLETE
    assert info.attempts == 1
    assert info.started_at is not None and info.finished_at is not None
    assert info.enqueued_at is not None and info.enqueued_at <= info.started_at <= info.finished_at
    assert info.worker_id


async def test_untyped_handle_by_id_reads_the_result(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def double(n: int) -> int:
        return n * 2

    async with start_worker(queue):
        job = await double.enqueue(21)
        assert await queue.job(job.id).result(timeout=10) == 42


async def test_result_waits_through_pubsub_when_the_job_finishes_later(
    queue: Queue, start_worker: Any
) -> None:
    gate = asyncio.Event()

    @queue.task
    async def gated() -> str:
        await gate.wait()
        return "done"

    async with start_worker(queue):
        job = await gated.enqueue()
        waiter = asyncio.create_task(job.result(timeout=10))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        gate.set()
        assert await waiter == "done"


async def test_failure_carries_remote_type_message_and_traceback(queue: Queue, start_worker: Any) -> None:
    @queue.task(retries=0)
    async def explode(n: int) -> None:
        raise KeyError(f"missing {n}")

    async with start_worker(queue):
        job = await explode.enqueue(7)
        with pytest.raises(JobFailed) as raised:
            await job.result(timeout=10)
    error = raised.value
    assert error.error_type == "KeyError"
    assert "missing 7" in error.error_message
    assert "raise KeyError" in error.traceback
    info = await job.info()
    assert info.status is JobStatus.FAILED
    assert info.error_type == "KeyError"


async def test_result_timeout_and_not_found(queue: Queue) -> None:
    @queue.task
    async def never_runs() -> None: ...

    job = await never_runs.enqueue()
    with pytest.raises(ResultTimeout):
        await job.result(timeout=0.2)
    with pytest.raises(JobNotFound):
        await queue.job("no-such-job").result(timeout=0.2)
    assert await queue.job("no-such-job").status() is JobStatus.NOT_FOUND


async def test_abort_queued_and_scheduled_jobs(queue: Queue) -> None:
    @queue.task
    async def pending() -> None: ...

    queued = await pending.enqueue()
    scheduled = await pending.with_options(delay=60).enqueue()
    kept = await pending.enqueue()
    assert await queued.abort() is True
    assert await scheduled.abort() is True
    assert await queued.status() is JobStatus.ABORTED
    assert await scheduled.status() is JobStatus.ABORTED
    with pytest.raises(JobAborted):
        await queued.result(timeout=1)
    assert await kept.status() is JobStatus.QUEUED
    assert await queue.redis.lrange(queue.keys.ready(0), 0, -1) == [kept.id.encode()]
    assert await queue.redis.zcard(queue.keys.delayed) == 0


async def test_abort_unknown_or_finished_changes_nothing(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def quick() -> int:
        return 1

    assert await queue.job("reuse-me").abort() is False
    async with start_worker(queue):
        # The id aborted before it existed must run normally (an arq bug poisoned it).
        job = await quick.with_options(job_id="reuse-me").enqueue()
        assert await job.result(timeout=10) == 1
        assert await job.abort() is False
    assert await job.status() is JobStatus.COMPLETE


async def test_abort_running_job_cancels_it(queue: Queue, start_worker: Any) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @queue.task
    async def long_running() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with start_worker(queue):
        job = await long_running.enqueue()
        await asyncio.wait_for(started.wait(), 10)
        assert await job.status() is JobStatus.RUNNING
        assert await job.abort() is True
        with pytest.raises(JobAborted):
            await job.result(timeout=5)
    assert cancelled.is_set()
    assert await job.status() is JobStatus.ABORTED
