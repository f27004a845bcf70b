"""Tasks used by tests that run real worker processes (``python -m hasten worker``)."""

from __future__ import annotations

import asyncio
import os
import time

from hasten import Backoff, Queue

queue = Queue(os.environ.get("HASTEN_TEST_QUEUE", "basic"))


@queue.task(retries=0)
async def add(a: int, b: int) -> int:
    return a + b


@queue.task(retries=0)
async def whoami() -> int:
    """The worker process's pid, so tests can see which process ran a job."""
    await asyncio.sleep(0.01)
    return os.getpid()


@queue.task(retries=3, backoff=Backoff(base=0.05, jitter=0))
async def fail_once(key: str) -> str:
    marker = os.path.join(os.environ.get("HASTEN_TEST_DIR", "/tmp"), key)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"


@queue.task(retries=0, timeout=60)
async def sleep_for(seconds: float) -> float:
    started = time.monotonic()
    await asyncio.sleep(seconds)
    return time.monotonic() - started


@queue.task(retries=0, timeout=60, lease=1.0)
async def outlive_lease(seconds: float) -> float:
    """Runs several leases long: only renewals on Redis's clock keep it from running twice."""
    started = time.monotonic()
    await asyncio.sleep(seconds)
    return time.monotonic() - started


@queue.task(retries=0)
async def wall_clock() -> float:
    """This worker's idea of the time (clock-skew tests run workers under faketime)."""
    return time.time()
