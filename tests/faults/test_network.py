"""Network faults between a worker and Redis: the worker notices, recovers, loses nothing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from hasten import Job, Queue
from tests.conftest import crashy_worker
from tests.faults.proxy import FaultProxy
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def run_faulted_load(
    redis_server: RedisServer, queue_name: str, tmp_path: Path, fault: str
) -> tuple[list[Job[int]], list[str]]:
    ledger = tmp_path / "ledger"
    queue = Queue(queue_name, redis_url=redis_server.url)

    @queue.task(name="tests.apps.crashy.durable_effect", lease=1.0)
    async def effect(n: int) -> int: ...

    async with FaultProxy(redis_server.port) as proxy:
        faulted = crashy_worker(proxy.url, queue_name, ledger, "faulted", "-c", "16", HASTEN_TIMEOUT="1")
        healthy = crashy_worker(
            redis_server.url, queue_name, ledger, "healthy", "-c", "16", HASTEN_TIMEOUT="1"
        )
        try:
            async with queue:
                jobs: list[Job[int]] = []
                for chunk in range(30):
                    jobs += await effect.enqueue_many([effect.prepare(chunk * 20 + i) for i in range(20)])
                    if chunk == 5:
                        if fault == "blackhole":
                            proxy.blackhole = True
                        elif fault == "delay":
                            proxy.delay = 0.05
                    if fault == "reset" and 5 <= chunk <= 20 and chunk % 3 == 0:
                        proxy.reset()
                    if chunk == 20:
                        proxy.blackhole, proxy.delay = False, 0.0  # the link heals
                    await asyncio.sleep(0.1)
                results = [await job.result(timeout=60) for job in jobs]
                assert results == list(range(600))
                # After the fault the faulted worker is back at work by itself.
                late = await effect.enqueue_many([effect.prepare(1000 + i) for i in range(200)])
                await asyncio.gather(*(j.result(timeout=60) for j in late))
                effects = [k async for k in queue.redis.scan_iter(match=f"effect:{queue_name}:*", count=1000)]
                assert len(effects) == 800  # each job's effect exactly once
                assert faulted.poll() is None and healthy.poll() is None
                started_late = {
                    line.split()[1]
                    for line in ledger.read_text().splitlines()
                    if line.split()[0] in {j.id for j in late}
                }
                assert str(faulted.pid) in started_late  # it recovered and took jobs again
                lines = ledger.read_text().splitlines()
                print(f"{fault}: {len(lines)} runs of {len(jobs) + len(late)} jobs")  # measured, not asserted
                return jobs, lines
        finally:
            for process in (faulted, healthy):
                process.send_signal(signal.SIGTERM)
            for process in (faulted, healthy):
                process.wait(30)


@pytest.fixture
def own_redis() -> RedisServer:
    return RedisServer()


@pytest.mark.parametrize("fault", ["blackhole", "reset", "delay"])
# redis-py leaves the socket of a connection the server dropped for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_worker_survives_network_faults(
    own_redis: RedisServer, queue_name: str, tmp_path: Path, fault: str
) -> None:
    try:
        await run_faulted_load(own_redis, queue_name, tmp_path, fault)
    finally:
        own_redis.close()
