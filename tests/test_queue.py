from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from hasten import (
    ArgumentError,
    ConfigurationError,
    JobStatus,
    PayloadTooLarge,
    Queue,
    RedisUnavailable,
    Settings,
)
from tests.redis_server import RedisServer, free_port


async def test_enqueue_creates_a_queued_job(queue: Queue) -> None:
    @queue.task
    async def add(a: int, b: int) -> int:
        return a + b

    job = await add.enqueue(1, 2)
    info = await job.info()
    assert info.status is JobStatus.QUEUED
    assert info.task == add.name
    assert info.attempts == 0
    assert info.enqueued_at is not None
    assert abs((datetime.now(UTC) - info.enqueued_at).total_seconds()) < 5


async def test_explicit_job_id_is_idempotent(queue: Queue) -> None:
    @queue.task
    async def send(user_id: int) -> None: ...

    first = await send.with_options(job_id="welcome-42").enqueue(42)
    second = await send.with_options(job_id="welcome-42").enqueue(43)
    assert first == second
    assert first.id == "welcome-42"
    assert await queue.redis.hlen(queue.keys.jobs) == 1
    assert await queue.redis.llen(queue.keys.ready(0)) == 1


async def test_enqueue_many_keeps_order_and_skips_existing_ids(queue: Queue) -> None:
    @queue.task
    async def work(n: int) -> int:
        return n

    await work.with_options(job_id="dup").enqueue(0)
    requests = [work.prepare(i) for i in range(1200)] + [work.with_options(job_id="dup").prepare(99)]
    jobs = await work.enqueue_many(requests)
    assert len(jobs) == 1201
    assert jobs[-1].id == "dup"
    assert len({j.id for j in jobs}) == 1201
    assert await queue.redis.hlen(queue.keys.jobs) == 1201
    ready = await queue.redis.lrange(queue.keys.ready(0), 0, -1)
    assert [r.decode() for r in ready[1:]] == [j.id for j in jobs[:-1]]


async def test_delay_and_run_at_schedule_on_redis_clock(queue: Queue) -> None:
    @queue.task
    async def later() -> None: ...

    delayed = await later.with_options(delay=timedelta(seconds=30)).enqueue()
    at = datetime.now(UTC) + timedelta(minutes=5)
    scheduled = await later.with_options(run_at=at).enqueue()
    info = await delayed.info()
    assert info.status is JobStatus.SCHEDULED
    assert info.scheduled_at is not None
    redis_now = datetime.fromtimestamp((await queue.redis.time())[0], UTC)
    assert 25 < (info.scheduled_at - redis_now).total_seconds() <= 31
    info = await scheduled.info()
    assert info.status is JobStatus.SCHEDULED
    assert info.scheduled_at is not None
    assert abs((info.scheduled_at - at).total_seconds()) < 0.01


async def test_naive_datetimes_and_conflicting_options_are_refused(queue: Queue) -> None:
    @queue.task
    async def later() -> None: ...

    with pytest.raises(ArgumentError, match="timezone-aware"):
        later.with_options(run_at=datetime.now())
    with pytest.raises(ArgumentError, match="not both"):
        later.with_options(delay=1, run_at=datetime.now(UTC))
    with pytest.raises(ArgumentError, match="priority"):
        later.with_options(priority=10**9)


async def test_priority_is_stored(queue: Queue) -> None:
    @queue.task(priority=3)
    async def ranked() -> None: ...

    default = await ranked.enqueue()
    urgent = await ranked.with_options(priority=9).enqueue()
    assert (await default.info()).priority == 3
    assert (await urgent.info()).priority == 9
    assert await queue.redis.zrange(queue.keys.prios, 0, -1) == [b"9", b"3"]


async def test_wrong_arguments_write_nothing(queue: Queue) -> None:
    @queue.task
    async def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ArgumentError):
        await add.enqueue("one", 2)  # type: ignore[arg-type]
    assert await queue.redis.exists(queue.keys.jobs) == 0


async def test_oversized_payload_is_refused_before_any_write(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, settings=Settings(redis_url=redis_url, max_payload_bytes=1000))

    @queue.task
    async def upload(blob: bytes) -> None: ...

    async with queue:
        small = upload.prepare(b"x" * 10)
        big = upload.prepare(b"x" * 5000)
        with pytest.raises(PayloadTooLarge) as raised:
            await upload.enqueue_many([small, big])
        assert raised.value.limit == 1000
        assert raised.value.size > 5000
        assert await queue.redis.exists(queue.keys.jobs) == 0


async def test_unreachable_redis_fails_fast_with_a_typed_error(queue_name: str) -> None:
    queue = Queue(queue_name, settings=Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", timeout=1))

    @queue.task
    async def ping() -> None: ...

    started = time.monotonic()
    with pytest.raises(RedisUnavailable):
        await ping.enqueue()
    assert time.monotonic() - started < 5
    await queue.close()


async def test_stalled_redis_fails_within_the_timeout(queue_name: str) -> None:
    server = RedisServer()
    try:
        queue = Queue(queue_name, settings=Settings(redis_url=server.url, timeout=0.5))

        @queue.task
        async def ping() -> None: ...

        async with queue:
            assert server.process is not None
            server.process.send_signal(19)  # SIGSTOP: the socket stays open, no reply comes
            try:
                with pytest.raises(RedisUnavailable):
                    await asyncio.wait_for(ping.enqueue(), 10)
            finally:
                server.process.send_signal(18)  # SIGCONT
    finally:
        server.close()


async def test_task_of_another_queue_is_refused(queue: Queue, redis_url: str) -> None:
    other = Queue("other-queue", redis_url=redis_url)

    @other.task
    async def elsewhere() -> None: ...

    with pytest.raises(ConfigurationError):
        await queue.enqueue_many([elsewhere.prepare()])


def test_duplicate_task_names_are_refused() -> None:
    queue = Queue("dups")

    @queue.task(name="same")
    async def one() -> None: ...

    with pytest.raises(ConfigurationError, match="already registered"):

        @queue.task(name="same")
        async def two() -> None: ...


def test_invalid_queue_names_are_refused() -> None:
    for name in ("", "a{b}", "has space"):
        with pytest.raises(ConfigurationError):
            Queue(name)


async def test_all_keys_share_the_queue_hash_tag(queue: Queue) -> None:
    @queue.task
    async def tagged() -> None: ...

    await tagged.enqueue()
    await tagged.with_options(delay=60).enqueue()
    keys = [k.decode() async for k in queue.redis.scan_iter(match=f"*{queue.name}*")]
    assert keys
    assert all(k.startswith(f"hasten:{{{queue.name}}}:") for k in keys)
