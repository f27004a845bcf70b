"""Workers whose wall clocks are 5 minutes off: Redis's clock decides, so nothing changes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hasten import JobStatus, Queue
from tests.conftest import ROOT

FAKETIME = shutil.which("faketime")
pytestmark = pytest.mark.skipif(
    FAKETIME is None and os.environ.get("CI") != "true", reason="faketime is not installed"
)


def skewed_worker(redis_url: str, queue_name: str, skew: str) -> subprocess.Popen[str]:
    assert FAKETIME is not None, "faketime is required in CI (make test installs it)"
    env = {
        **os.environ,
        "HASTEN_REDIS_URL": redis_url,
        "HASTEN_TEST_QUEUE": queue_name,
        "PYTHONPATH": str(ROOT),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # only the wall clock is wrong
    }
    command = [FAKETIME, "-f", skew, sys.executable, "-m", "hasten", "worker"]
    return subprocess.Popen(
        [*command, "tests.apps.basic:queue", "-q"],
        cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_skewed_workers_keep_time_by_redis(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    workers = [skewed_worker(redis_url, queue_name, skew) for skew in ("+300s", "-300s")]
    queue = Queue(queue_name, redis_url=redis_url)

    @queue.task(name="tests.apps.basic.add")
    async def add(a: int, b: int) -> int: ...

    @queue.task(name="tests.apps.basic.wall_clock")
    async def wall_clock() -> float: ...

    @queue.task(name="tests.apps.basic.outlive_lease", lease=1.0)
    async def outlive_lease(seconds: float) -> float: ...

    try:
        async with queue:
            # Immediate jobs are not mistaken for future ones by the worker that is behind.
            jobs = await add.enqueue_many([add.prepare(i, i) for i in range(40)])
            assert [await j.result(timeout=30) for j in jobs] == [2 * i for i in range(40)]
            # The workers' wall clocks really are five minutes off.
            for _ in range(4):
                skewed_by = await (await wall_clock.enqueue()).result(timeout=30) - time.time()
                assert 250 < abs(skewed_by) < 350
            # A delayed job starts when Redis says it is due: not early, not 5 minutes late.
            delayed = await add.with_options(delay=2).enqueue(1, 1)
            assert await delayed.result(timeout=30) == 2
            info = await delayed.info()
            assert info.started_at is not None and info.enqueued_at is not None
            waited = (info.started_at - info.enqueued_at).total_seconds()
            assert 2.0 <= waited < 12.0
            # A job three leases long keeps its lease: it runs once, on one worker.
            long_job = await outlive_lease.enqueue(3.0)
            assert await long_job.result(timeout=30) >= 2.9
            info = await long_job.info()
            assert info.status is JobStatus.COMPLETE
            assert info.attempts == 1
            assert await queue.dead_letters.count() == 0
            assert all(w.poll() is None for w in workers)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
