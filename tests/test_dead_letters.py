from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hasten import Backoff, JobFailed, JobStatus, Queue, Worker
from tests.conftest import hasten_process
from tests.raw import claim_as, write_raw_job

FAST = Backoff(base=0.01, factor=1, jitter=0)


async def test_failed_job_is_kept_and_can_be_requeued(queue: Queue) -> None:
    broken = True

    @queue.task(retries=1, backoff=FAST)
    async def charge(order: int) -> str:
        if broken:
            raise ConnectionError(f"gateway down for order {order}")
        return f"charged {order}"

    job = await charge.enqueue(7)
    await Worker(queue, burst=True, handle_signals=False).run()
    with pytest.raises(JobFailed):
        await job.result(timeout=5)
    (letter,) = await queue.dead_letters.list()
    assert letter.id == job.id
    assert letter.task == charge.name
    assert letter.reason == "retries_exhausted"
    assert letter.error_type == "ConnectionError"
    assert letter.error_message == "gateway down for order 7"
    assert letter.traceback is not None and "raise ConnectionError" in letter.traceback
    assert letter.attempts == 2
    assert await queue.dead_letters.get(job.id) == letter

    broken = False
    assert await queue.dead_letters.requeue(job.id) == 1
    assert await job.status() is JobStatus.QUEUED
    assert (await job.info()).attempts == 0
    await Worker(queue, burst=True, handle_signals=False).run()
    assert await job.result(timeout=5) == "charged 7"
    assert await queue.dead_letters.count() == 0


async def test_bad_payloads_are_dead_lettered_with_their_reason(queue: Queue) -> None:
    @queue.task
    async def typed(n: int) -> int:
        return n

    await write_raw_job(queue, "garbage", b"\xc1\xc1")
    await write_raw_job(queue, "bad-args", queue.codec.seal("bad-args", [typed.name, {"n": "x"}]))
    await Worker(queue, burst=True, handle_signals=False).run()
    reasons = {letter.id: letter.reason for letter in await queue.dead_letters.list()}
    assert reasons == {"garbage": "decode_error", "bad-args": "validation_error"}


async def test_dead_letter_queue_is_bounded(queue: Queue) -> None:
    @queue.task(retries=0)
    async def fails(n: int) -> None:
        raise ValueError(n)

    # Many fail within one millisecond: the order kept is still the order they failed in.
    jobs = await fails.enqueue_many(fails.prepare(i) for i in range(40))
    await Worker(queue, burst=True, handle_signals=False, concurrency=1, dead_letter_max=10).run()
    kept = [letter.id for letter in await queue.dead_letters.list(limit=50)]
    assert kept == [j.id for j in reversed(jobs[30:])]
    assert await queue.redis.hlen(queue.keys.dlq_bodies) == 10


async def test_requeue_all_and_purge(queue: Queue) -> None:
    @queue.task(retries=0)
    async def fails(n: int) -> None:
        raise ValueError(n)

    await fails.enqueue_many([fails.prepare(i) for i in range(4)])
    await Worker(queue, burst=True, handle_signals=False).run()
    assert await queue.dead_letters.count() == 4
    assert await queue.dead_letters.requeue() == 4
    assert await queue.redis.llen(queue.keys.ready(0)) == 4
    await Worker(queue, burst=True, handle_signals=False).run()
    assert await queue.dead_letters.purge() == 4
    assert await queue.dead_letters.count() == 0
    assert await queue.dead_letters.purge("unknown") == 0


def _dlq(redis_url: str, queue_name: str, *args: str) -> tuple[int, str, str]:
    env = {"HASTEN_REDIS_URL": redis_url, "HASTEN_TEST_QUEUE": queue_name}
    process = hasten_process("dlq", *args, env=env)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


async def test_dlq_command(queue: Queue, redis_url: str, queue_name: str, tmp_path: Path) -> None:
    app = Queue(queue_name, redis_url=redis_url)

    @app.task(name="tests.apps.basic.add")
    async def add(a: int, b: int) -> int: ...

    async with app:
        (job,) = await app.enqueue_many([add.prepare(1, 2)])
    # A worker that only knows the task under another name lets it fail for good.
    await Worker(queue, burst=True, handle_signals=False, unknown_task_grace=0).run()
    target = "tests.apps.basic:queue"
    code, out, _ = _dlq(redis_url, queue_name, "list", target)
    assert code == 0 and job.id in out and "unknown_task" in out
    code, out, _ = _dlq(redis_url, queue_name, "show", target, job.id)
    assert code == 0 and "attempts: 1" in out
    code, _, err = _dlq(redis_url, queue_name, "requeue", target)
    assert code == 2 and "--all" in err
    code, out, _ = _dlq(redis_url, queue_name, "requeue", target, job.id)
    assert code == 0 and "requeued 1 job" in out
    process = hasten_process(
        "worker", target, "--burst", env={"HASTEN_REDIS_URL": redis_url, "HASTEN_TEST_QUEUE": queue_name}
    )
    process.communicate(timeout=30)
    assert await queue.job(job.id).result(timeout=5) == 3
    code, out, _ = _dlq(redis_url, queue_name, "purge", target, "--all")
    assert code == 0 and "purged 0 jobs" in out


async def test_stalled_job_is_dead_lettered(queue: Queue, start_worker: Any) -> None:
    @queue.task(lease=0.2)
    async def pill() -> None: ...

    job = await pill.enqueue()
    await claim_as(queue, "dead-worker", max_stalls=0)
    await asyncio.sleep(0.3)
    await claim_as(queue, "reaper", want=0, max_stalls=0)
    (letter,) = await queue.dead_letters.list()
    assert (letter.id, letter.reason) == (job.id, "stalled")


async def test_dead_letters_older_than_the_age_limit_are_dropped(queue: Queue) -> None:
    @queue.task(retries=0)
    async def fails(n: int) -> None:
        raise ValueError(n)

    first = await fails.enqueue(1)
    await Worker(queue, burst=True, handle_signals=False, dead_letter_age=0.2).run()
    assert [letter.id for letter in await queue.dead_letters.list()] == [first.id]
    await asyncio.sleep(0.3)
    second = await fails.enqueue(2)
    await Worker(queue, burst=True, handle_signals=False, dead_letter_age=0.2).run()
    assert [letter.id for letter in await queue.dead_letters.list()] == [second.id]
