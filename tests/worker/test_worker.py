from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hasten import (
    INJECTED,
    Backoff,
    JobAborted,
    JobContext,
    JobExpired,
    JobFailed,
    JobOutcome,
    JobStatus,
    Middleware,
    Progress,
    Queue,
    Retry,
    Settings,
    Worker,
)
from tests.conftest import wait_for_status
from tests.raw import claim_as, renew_as, report_as, write_raw_job

FAST = Backoff(base=0.05, factor=1, jitter=0)


async def test_runs_jobs_concurrently_up_to_the_limit(queue: Queue, start_worker: Any) -> None:
    running = 0
    peak = 0

    @queue.task
    async def slow(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return n

    jobs = await slow.enqueue_many([slow.prepare(i) for i in range(40)])
    async with start_worker(queue, concurrency=8):
        assert [await j.result(timeout=20) for j in jobs] == list(range(40))
    assert peak == 8


async def test_sync_tasks_run_in_a_thread_pool(queue: Queue, start_worker: Any) -> None:
    main_thread = threading.get_ident()
    spans: list[tuple[float, float]] = []

    @queue.task
    def blocking(seconds: float) -> int:
        started = time.monotonic()
        time.sleep(seconds)
        spans.append((started, time.monotonic()))
        return threading.get_ident()

    async with start_worker(queue, concurrency=4):
        jobs = await blocking.enqueue_many([blocking.prepare(0.3) for _ in range(4)])
        threads = {await j.result(timeout=10) for j in jobs}
    assert main_thread not in threads
    # All four were sleeping at the same moment: they ran side by side, not one by one.
    assert max(start for start, _ in spans) < min(end for _, end in spans)


async def test_higher_priority_runs_first_fifo_within_a_priority(queue: Queue, start_worker: Any) -> None:
    order: list[str] = []

    @queue.task
    async def record(label: str) -> None:
        order.append(label)

    high, lowest, urgent = (record.with_options(priority=p) for p in (5, -3, 9))
    await record.enqueue_many(
        [
            record.prepare("low-1"),
            record.prepare("low-2"),
            high.prepare("high-1"),
            high.prepare("high-2"),
            lowest.prepare("lowest"),
            urgent.prepare("urgent"),
        ]
    )
    async with start_worker(queue, concurrency=1):
        while len(order) < 6:
            await asyncio.sleep(0.02)
    assert order == ["urgent", "high-1", "high-2", "low-1", "low-2", "lowest"]


async def test_delayed_job_starts_when_due_not_before(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def stamp() -> float:
        return time.monotonic()

    async with start_worker(queue):
        before = time.monotonic()
        job = await stamp.with_options(delay=0.8).enqueue()
        await asyncio.sleep(0.3)
        assert await job.status() is JobStatus.SCHEDULED
        ran_at = await job.result(timeout=10)
    assert 0.75 <= ran_at - before < 5


async def test_idle_worker_is_woken_by_a_new_job(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def ping() -> str:
        return "pong"

    async with start_worker(queue):
        await asyncio.sleep(0.3)  # the worker is now blocked waiting on Redis
        job = await ping.enqueue()
        assert await job.result(timeout=10) == "pong"
    info = await job.info()
    assert info.started_at is not None and info.enqueued_at is not None
    # Woken by the enqueue itself, not by its blocking wait running out (5 s).
    assert (info.started_at - info.enqueued_at).total_seconds() < 4.5


async def test_exceptions_retry_with_backoff_then_fail(queue: Queue, start_worker: Any) -> None:
    attempts: list[int] = []

    @queue.task(retries=2, backoff=FAST)
    async def always_fails(ctx: JobContext[None] = INJECTED) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"attempt {ctx.attempt}")

    async with start_worker(queue):
        job = await always_fails.enqueue()
        with pytest.raises(JobFailed) as raised:
            await job.result(timeout=10)
    assert attempts == [1, 2, 3]
    assert raised.value.error_message == "attempt 3"
    assert (await job.info()).attempts == 3


async def test_retrying_status_between_attempts(queue: Queue, start_worker: Any) -> None:
    @queue.task(retries=1, backoff=Backoff(base=30, jitter=0))
    async def fails_slowly() -> None:
        raise RuntimeError("boom")

    async with start_worker(queue):
        job = await fails_slowly.enqueue()
        for _ in range(200):
            if await job.status() is JobStatus.RETRYING:
                break
            await asyncio.sleep(0.02)
        info = await job.info()
    assert info.status is JobStatus.RETRYING
    assert info.attempts == 1
    assert info.scheduled_at is not None


async def test_retry_exception_sets_the_delay(queue: Queue, start_worker: Any) -> None:
    seen: list[float] = []

    @queue.task(retries=1)
    async def again(ctx: JobContext[None] = INJECTED) -> int:
        seen.append(time.monotonic())
        if ctx.attempt == 1:
            raise Retry(delay=0.5)
        return ctx.attempt

    async with start_worker(queue):
        job = await again.enqueue()
        assert await job.result(timeout=10) == 2
    assert seen[1] - seen[0] >= 0.45


async def test_non_retryable_exceptions_fail_at_once(queue: Queue, start_worker: Any) -> None:
    calls = 0

    @queue.task(retries=5, no_retry=(PermissionError,), backoff=FAST)
    async def forbidden() -> None:
        nonlocal calls
        calls += 1
        raise PermissionError("nope")

    async with start_worker(queue):
        with pytest.raises(JobFailed, match="PermissionError"):
            await (await forbidden.enqueue()).result(timeout=10)
    assert calls == 1


async def test_timeout_cancels_and_counts_as_a_failed_attempt(queue: Queue, start_worker: Any) -> None:
    cancelled = 0

    @queue.task(timeout=0.2, retries=1, backoff=FAST)
    async def hangs() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async with start_worker(queue):
        job = await hangs.enqueue()
        with pytest.raises(JobFailed) as raised:
            await job.result(timeout=10)
    assert raised.value.error_type == "TimeoutError"
    assert cancelled == 2
    assert (await job.info()).attempts == 2


async def test_per_call_overrides_apply(queue: Queue, start_worker: Any) -> None:
    calls = 0

    @queue.task(retries=5, backoff=FAST)
    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("x")

    async with start_worker(queue):
        job = await flaky.with_options(retries=0, result_ttl=30).enqueue()
        with pytest.raises(JobFailed):
            await job.result(timeout=10)
    assert calls == 1
    assert 0 < await queue.redis.ttl(queue.keys.result(job.id)) <= 30


async def test_expired_job_never_runs(queue: Queue, start_worker: Any) -> None:
    ran = False

    @queue.task
    async def stale() -> None:
        nonlocal ran
        ran = True

    job = await stale.with_options(expires=0.2).enqueue()
    await asyncio.sleep(0.4)
    async with start_worker(queue):
        with pytest.raises(JobExpired):
            await job.result(timeout=10)
    assert not ran
    assert await job.status() is JobStatus.EXPIRED


async def test_results_are_kept_with_their_ttl(queue: Queue, start_worker: Any) -> None:
    @queue.task(result_ttl=120)
    async def keep() -> int:
        return 1

    async with start_worker(queue):
        job = await keep.enqueue()
        await job.result(timeout=10)
    assert 100 < await queue.redis.ttl(queue.keys.result(job.id)) <= 120
    # Nothing but the result and constant-size bookkeeping (token counter, wake markers).
    leftovers = {k.decode() async for k in queue.redis.scan_iter(match=f"{queue.keys.prefix}*")}
    assert queue.keys.result(job.id) in leftovers
    bookkeeping = {k for k in leftovers if k.startswith((queue.keys.wake, queue.keys.prefix + "token"))}
    assert leftovers - bookkeeping == {queue.keys.result(job.id)}


async def test_lifespan_resources_are_created_once_per_worker(redis_url: str, queue_name: str) -> None:
    created: list[str] = []
    closed: list[str] = []

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, str]]:
        created.append("pool")
        yield {"db": "pool"}
        closed.append("pool")

    queue = Queue(queue_name, redis_url=redis_url, lifespan=resources)

    @queue.task
    async def use(ctx: JobContext[dict[str, str]] = INJECTED) -> str:
        return ctx.resources["db"]

    async with queue:
        jobs = await use.enqueue_many([use.prepare() for _ in range(5)])
        await Worker(queue, burst=True, handle_signals=False).run()
        assert [await j.result(timeout=5) for j in jobs] == ["pool"] * 5
    assert created == ["pool"]
    assert closed == ["pool"]


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def before_job(self, ctx: JobContext[Any]) -> None:
        self.log.append(f"{self.name}:before:{ctx.task.rsplit('.', 1)[-1]}")

    async def after_job(self, ctx: JobContext[Any], outcome: JobOutcome) -> None:
        self.log.append(f"{self.name}:after:{outcome.status}")


class Broken(Middleware):
    async def before_job(self, ctx: JobContext[Any]) -> None:
        raise RuntimeError("hook bug")

    async def after_job(self, ctx: JobContext[Any], outcome: JobOutcome) -> None:
        raise RuntimeError("hook bug")


async def test_middleware_runs_as_an_onion_and_errors_are_isolated(redis_url: str, queue_name: str) -> None:
    log: list[str] = []
    queue = Queue(
        queue_name, redis_url=redis_url, middleware=[Recorder("a", log), Broken(), Recorder("b", log)]
    )

    @queue.task
    async def hello() -> str:
        return "hi"

    errors: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("hasten.middleware").addHandler(handler)
    try:
        async with queue:
            job = await hello.enqueue()
            await Worker(queue, burst=True, handle_signals=False).run()
            assert await job.result(timeout=5) == "hi"
    finally:
        logging.getLogger("hasten.middleware").removeHandler(handler)
    assert log == ["a:before:hello", "b:before:hello", "b:after:complete", "a:after:complete"]
    assert errors == ["Broken.before_job raised; ignored", "Broken.after_job raised; ignored"]


async def test_burst_worker_drains_and_returns(queue: Queue) -> None:
    @queue.task
    async def item(n: int) -> int:
        return n

    jobs = await item.enqueue_many([item.prepare(i) for i in range(50)])
    worker = Worker(queue, burst=True, handle_signals=False)
    await asyncio.wait_for(worker.run(), 30)
    assert worker.stats.complete == 50
    assert all([await j.status() is JobStatus.COMPLETE for j in jobs])


async def test_long_job_keeps_its_lease_and_runs_once(queue: Queue, start_worker: Any) -> None:
    runs = 0

    @queue.task(lease=0.3, timeout=10)
    async def long_job() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(3.0)  # ten leases long
        return runs

    async with start_worker(queue), start_worker(queue):
        job = await long_job.enqueue()
        assert await job.result(timeout=10) == 1
    assert runs == 1


async def test_dead_workers_job_is_reclaimed_by_a_live_worker(queue: Queue, start_worker: Any) -> None:
    @queue.task(lease=0.3)
    async def survivor() -> str:
        return "finished"

    job = await survivor.enqueue()
    # A worker claims the job and dies without a word: nobody renews its lease.
    await claim_as(queue, "dead-worker")
    assert (await job.info()).worker_id == "dead-worker"
    async with start_worker(queue) as worker:
        assert await job.result(timeout=10) == "finished"
    info = await job.info()
    assert info.attempts == 1  # the stall did not use up an attempt
    assert worker.stats.reclaimed == 1


async def test_job_that_keeps_stalling_fails_instead_of_looping(queue: Queue, start_worker: Any) -> None:
    @queue.task(lease=0.2)
    async def pill() -> None: ...

    job = await pill.enqueue()
    for _ in range(2):
        await claim_as(queue, "dead-worker", max_stalls=1)
        await asyncio.sleep(0.3)
        await claim_as(queue, "reaper", want=0, max_stalls=1)
    with pytest.raises(JobFailed, match="stalled"):
        await job.result(timeout=1)


async def test_late_outcome_from_a_fenced_worker_is_rejected(queue: Queue) -> None:
    @queue.task(lease=0.2)
    async def contested() -> None: ...

    job = await contested.enqueue()
    first = await claim_as(queue, "zombie")
    zombie_token = str(first[4][1])
    await asyncio.sleep(0.3)
    second = await claim_as(queue, "alive")
    assert second[3] == [job.id.encode()]  # reclaimed ...
    assert second[4][0] == job.id.encode()  # ... and claimed again by the live worker
    record = queue.codec.pack_record({"s": "complete", "v": queue.codec.seal(job.id, None)})
    late = await report_as(queue, "zombie", [[job.id, zombie_token, "f", record, 60000]])
    assert late[2] == [job.id.encode()]
    assert await job.status() is JobStatus.RUNNING
    renewed = await renew_as(queue, [[job.id, zombie_token, 1000]])
    assert renewed[0] == [job.id.encode()]


async def test_a_bad_job_never_kills_the_worker(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def good(n: int) -> int:
        return n

    # Payloads written straight into Redis, as a buggy or hostile producer could.
    garbage = {
        "garbage": b"\xc1\xc1",
        "truncated": queue.codec.seal("truncated", [good.name, {"n": 1}])[:-2],
        "wrong-shape": queue.codec.seal("wrong-shape", {"not": "a list"}),
    }
    for job_id, payload in garbage.items():
        await write_raw_job(queue, job_id, payload)
    bad_args = queue.codec.seal("bad-args", [good.name, {"n": "not a number"}, None, None])
    await write_raw_job(queue, "bad-args", bad_args)
    async with start_worker(queue):
        for job_id, reason in [
            ("garbage", "decode_error"),
            ("truncated", "decode_error"),
            ("wrong-shape", "decode_error"),
            ("bad-args", "validation_error"),
        ]:
            with pytest.raises(JobFailed) as raised:
                await queue.job(job_id).result(timeout=10)
            assert raised.value.error_type.endswith(
                "DecodeError" if reason == "decode_error" else "ValidationError"
            )
            record = queue.codec.unpack_record(await queue.redis.get(queue.keys.result(job_id)))
            assert record["r"] == reason
        assert await (await good.enqueue(5)).result(timeout=10) == 5


async def test_bad_signature_fails_without_running(redis_url: str, queue_name: str, tmp_path: Any) -> None:
    settings = Settings(redis_url=redis_url, serializer="pickle", signing_key=b"k1")
    queue = Queue(queue_name, settings=settings)
    canary = tmp_path / "canary"

    @queue.task
    async def safe(n: int) -> int:
        return n

    async with queue:
        real = await safe.enqueue(1)
        stored = await queue.redis.hget(queue.keys.jobs, real.id)
        _, _, payload = stored.partition(b"|")
        # The same signed bytes under another id, and a forged pickle with no valid MAC.
        await write_raw_job(queue, "replayed", payload)
        import pickle

        class Exploit:
            def __reduce__(self) -> Any:
                return (open, (str(canary), "w"))

        forged = pickle.dumps(Exploit()) + b"\x00" * 32
        await write_raw_job(queue, "forged", forged)
        await Worker(queue, burst=True, handle_signals=False).run()
        assert await real.result(timeout=5) == 1
        for job_id in ("replayed", "forged"):
            with pytest.raises(JobFailed):
                await queue.job(job_id).result(timeout=5)
            record = queue.codec.unpack_record(await queue.redis.get(queue.keys.result(job_id)))
            assert record["r"] == "signature_invalid"
        letters = {letter.id: (letter.reason, letter.attempts) for letter in await queue.dead_letters.list()}
        assert letters == {"replayed": ("signature_invalid", 1), "forged": ("signature_invalid", 1)}
    assert not canary.exists()


async def test_unknown_task_is_retried_not_failed(queue: Queue, redis_url: str, start_worker: Any) -> None:
    # The producer knows a task this worker's code does not have yet (a rolling deploy).
    newer = Queue(queue.name, redis_url=redis_url)

    @newer.task(name="brand-new")
    async def brand_new() -> str:
        return "ran on the new worker"

    job = await newer.enqueue_many([brand_new.prepare()])
    async with start_worker(queue, unknown_task_grace=60) as old_worker:
        for _ in range(100):
            if old_worker.stats.retried:
                break
            await asyncio.sleep(0.02)
    assert old_worker.stats.failed == 0
    assert await job[0].status() in (JobStatus.SCHEDULED, JobStatus.QUEUED)
    assert (await job[0].info()).attempts == 0
    async with newer, start_worker(newer):
        assert await job[0].result(timeout=10) == "ran on the new worker"


async def test_unknown_task_fails_after_the_grace_period(
    queue: Queue, redis_url: str, start_worker: Any
) -> None:
    other = Queue(queue.name, redis_url=redis_url)

    @other.task(name="gone")
    async def gone() -> None: ...

    (job,) = await other.enqueue_many([gone.prepare()])
    await other.close()
    async with start_worker(queue, unknown_task_grace=0):
        with pytest.raises(JobFailed, match="unknown_task"):
            await queue.job(job.id).result(timeout=10)


async def test_graceful_stop_finishes_running_jobs(queue: Queue) -> None:
    @queue.task
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "finished"

    worker = Worker(queue, handle_signals=False, shutdown_grace=10)
    task = asyncio.create_task(worker.run())
    job = await slow.enqueue()
    await wait_for_status(job, JobStatus.RUNNING)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert await job.status() is JobStatus.COMPLETE


async def test_stop_without_grace_releases_jobs_without_using_an_attempt(queue: Queue) -> None:
    @queue.task
    async def endless() -> None:
        await asyncio.sleep(60)

    worker = Worker(queue, handle_signals=False, shutdown_grace=0)
    task = asyncio.create_task(worker.run())
    job = await endless.enqueue()
    await wait_for_status(job, JobStatus.RUNNING)
    worker.stop()
    await asyncio.wait_for(task, 10)
    info = await job.info()
    assert info.status is JobStatus.QUEUED
    assert info.attempts == 0
    assert worker.stats.released == 1


async def test_prefetched_job_can_be_aborted_and_is_released_on_stop(queue: Queue) -> None:
    gate = asyncio.Event()
    ran: list[str] = []

    @queue.task
    async def quick() -> None: ...

    @queue.task
    async def blocker(label: str) -> None:
        ran.append(label)
        await gate.wait()

    worker = Worker(queue, concurrency=4, handle_signals=False, shutdown_grace=0)
    task = asyncio.create_task(worker.run())
    # Short jobs teach the worker to hold a job or two beyond its concurrency.
    for job in await quick.enqueue_many([quick.prepare() for _ in range(40)]):
        await job.result(timeout=10)
    busy = await blocker.enqueue_many([blocker.prepare(label) for label in "abcd"])
    for _ in range(500):
        if len(ran) == 4:
            break
        await asyncio.sleep(0.01)
    held = await blocker.enqueue("held")
    kept = await blocker.enqueue("kept")
    for _ in range(500):  # leased by this worker, waiting for a free slot
        if {(await j.info()).status for j in (held, kept)} == {JobStatus.RUNNING}:
            break
        await asyncio.sleep(0.01)
    assert await held.abort() is True
    with pytest.raises(JobAborted):
        await held.result(timeout=5)
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert ran == ["a", "b", "c", "d"]
    assert [(await j.info()).status for j in (*busy, kept)] == [JobStatus.QUEUED] * 5


async def test_json_serializer_end_to_end(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, settings=Settings(redis_url=redis_url, serializer="json"))

    @queue.task
    async def echo(items: list[int], label: str) -> dict[str, Any]:
        return {"label": label, "sum": sum(items)}

    async with queue:
        job = await echo.enqueue([1, 2, 3], "six")
        stored = await queue.redis.hget(queue.keys.jobs, job.id)
        assert stored.partition(b"|")[2].startswith(b'["')  # readable JSON in Redis
        await Worker(queue, burst=True, handle_signals=False).run()
        assert await job.result(timeout=5) == {"label": "six", "sum": 6}


async def test_unserializable_result_fails_without_retrying(queue: Queue, start_worker: Any) -> None:
    calls = 0

    @queue.task(retries=3, backoff=FAST)
    async def leaky() -> Any:
        nonlocal calls
        calls += 1
        return threading.Lock()

    async with start_worker(queue):
        with pytest.raises(JobFailed) as raised:
            await (await leaky.enqueue()).result(timeout=10)
    assert calls == 1
    assert "SerializationError" in raised.value.error_type


async def test_held_job_goes_to_an_idle_worker_when_slots_stay_busy(queue: Queue, start_worker: Any) -> None:
    gate = asyncio.Event()

    @queue.task
    async def long_job(n: int) -> str:
        await gate.wait()
        return "done"

    async with start_worker(queue, concurrency=2, worker_id="busy") as busy:
        jobs = await long_job.enqueue_many([long_job.prepare(i) for i in range(3)])
        for _ in range(500):  # the busy worker runs two and holds the third
            if busy.stats.claimed == 3:
                break
            await asyncio.sleep(0.01)
        async with start_worker(queue, concurrency=2, worker_id="idle"):
            for _ in range(500):
                if (await jobs[2].info()).worker_id == "idle":
                    break
                await asyncio.sleep(0.01)
            assert (await jobs[2].info()).worker_id == "idle"
            gate.set()
            assert [await j.result(timeout=10) for j in jobs] == ["done"] * 3
    assert busy.stats.released >= 1


async def test_progress_is_reported_coalesced_and_readable(queue: Queue, start_worker: Any) -> None:
    gate = asyncio.Event()

    @queue.task
    async def importer(rows: int, progress: Progress = INJECTED) -> int:
        for i in range(1, rows + 1):
            progress.update(i / rows, f"row {i}", {"imported": i})
            if i == rows // 2:
                await gate.wait()
            elif i % 100 == 0:
                await asyncio.sleep(0.001)
        return rows

    @queue.task
    def sync_importer(rows: int, progress: Progress = INJECTED) -> int:
        for i in range(1, rows + 1):
            progress.update(i / rows, f"row {i}")
        return rows

    assert importer.signature.dump_arguments((10,), {}) == {"rows": 10}  # not an argument
    before = (await queue.redis.info("commandstats")).get("cmdstat_publish", {}).get("calls", 0)
    async with start_worker(queue):
        job = await importer.enqueue(2000)
        while (info := await job.progress()) is None or info.fraction != 0.5:
            await asyncio.sleep(0.01)
        assert (info.message, info.data) == ("row 1000", {"imported": 1000})
        gate.set()
        assert await job.result(timeout=10) == 2000
        threaded = await sync_importer.enqueue(500)  # updates from a worker thread
        assert await threaded.result(timeout=10) == 500
        threaded_final = await threaded.progress()
        assert threaded_final is not None and threaded_final.message == "row 500"
    final = await job.progress()
    assert final is not None and (final.fraction, final.message) == (1.0, "row 2000")
    assert final.updated_at is not None
    after = (await queue.redis.info("commandstats"))["cmdstat_publish"]["calls"]
    assert after - before < 200  # 2,500 updates, a few dozen writes
