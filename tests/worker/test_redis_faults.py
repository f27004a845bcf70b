"""Redis itself fails: restarted mid-load, or full. Workers recover by themselves."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from hasten import Job, Queue, QueueFull, RedisUnavailable, Settings
from tests.conftest import crashy_worker
from tests.redis_server import RedisServer, free_port


def restart_after(server: RedisServer, seconds: float) -> None:
    time.sleep(seconds)
    server.start()


@pytest.mark.slow
@pytest.mark.timeout(180)
# redis-py leaves the socket of a connection the server dropped for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_redis_killed_and_restarted_loses_no_acknowledged_job(queue_name: str, tmp_path: Path) -> None:
    server = RedisServer(appendonly=True)  # AOF, fsync every second
    ledger = tmp_path / "ledger"
    queue = Queue(queue_name, settings=Settings(redis_url=server.url, timeout=1, connect_timeout=0.5))

    @queue.task(name="tests.apps.crashy.durable_effect", lease=1.0)
    async def effect(n: int) -> int: ...

    workers = [crashy_worker(server.url, queue_name, ledger, f"w{i}", "-c", "16") for i in range(2)]
    acknowledged: list[Job[int]] = []
    refused = 0
    try:
        async with queue:
            for chunk in range(40):
                # Ids chosen by the producer make a retried enqueue safe: it never duplicates.
                batch = [
                    effect.with_options(job_id=f"job-{chunk}-{i}").prepare(chunk * 50 + i) for i in range(50)
                ]
                while True:
                    try:
                        acknowledged.extend(await effect.enqueue_many(batch))
                        break
                    except RedisUnavailable:
                        refused += 1
                        await asyncio.sleep(0.1)
                if chunk == 15:
                    await acknowledged[0].result(timeout=30)  # the workers are busy by now
                    server.kill()  # SIGKILL: no shutdown, no final save
                    # Back in a second, on the same port and directory: the AOF is replayed.
                    restart = asyncio.create_task(asyncio.to_thread(restart_after, server, 1.0))
                await asyncio.sleep(0.02)
            await restart
            results = [await job.result(timeout=60) for job in acknowledged]
            assert sorted(results) == list(range(2000))
            effects = [k async for k in queue.redis.scan_iter(match=f"effect:{queue_name}:*", count=1000)]
            assert len(effects) == 2000
            assert all(w.poll() is None for w in workers)  # they carried on by themselves
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(30)
        server.close()
    assert refused >= 1  # the outage was real


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_full_redis_refuses_enqueue_but_workers_drain(queue_name: str, start_worker: Any) -> None:
    server = RedisServer("--maxmemory", "4mb")
    try:
        queue = Queue(queue_name, redis_url=server.url)

        @queue.task
        async def blob(data: bytes) -> None: ...

        async with queue:
            jobs: list[Job[None]] = []
            started = time.monotonic()
            with pytest.raises(QueueFull):
                while time.monotonic() - started < 60:
                    jobs.extend(await blob.enqueue_many([blob.prepare(b"x" * 2000) for _ in range(100)]))
            refused_at = len(jobs)
            assert refused_at > 0
            async with start_worker(queue, concurrency=50):
                for job in jobs:
                    await job.result(timeout=30)
                # Results (kept for an hour) hold memory too; with them gone there is room again.
                await queue.redis.delete(*[queue.keys.result(j.id) for j in jobs])
                more = await blob.enqueue_many([blob.prepare(b"y" * 2000) for _ in range(100)])
                for job in more:
                    await job.result(timeout=30)
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_worker_waits_out_a_read_only_redis(queue_name: str, start_worker: Any) -> None:
    server = RedisServer()
    try:
        queue = Queue(queue_name, redis_url=server.url)

        @queue.task
        async def echo(n: int) -> int:
            return n

        async with queue, start_worker(queue) as worker:
            assert await (await echo.enqueue(1)).result(timeout=10) == 1
            admin = server.client()
            admin.replicaof("127.0.0.1", free_port())  # demoted, as in a failover: writes refused
            with pytest.raises(RedisUnavailable, match="read-only"):
                await echo.enqueue(2)
            await asyncio.sleep(1.0)  # the worker's calls fail meanwhile; it keeps trying
            admin.replicaof("NO", "ONE")  # promoted again
            assert await (await echo.enqueue(3)).result(timeout=10) == 3
            assert worker.stats.complete == 2
            admin.close()
    finally:
        server.close()
