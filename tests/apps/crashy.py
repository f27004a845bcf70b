"""A job with a side effect guarded by an idempotency key, for crash tests."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from hasten import INJECTED, Backoff, JobContext, Queue

queue = Queue(os.environ.get("HASTEN_TEST_QUEUE", "crashy"))
LEDGER = os.environ.get("HASTEN_TEST_LEDGER", os.devnull)


@queue.task(lease=1.0, retries=0, timeout=30)
async def effect(n: int, ctx: JobContext[Any] = INJECTED) -> int:
    return await _effect(n, ctx)


@queue.task(lease=1.0, retries=10, timeout=30, backoff=Backoff(base=0.2, factor=1.5, max=2))
async def durable_effect(n: int, ctx: JobContext[Any] = INJECTED) -> int:
    """The same, retried: its own Redis call fails while Redis is down."""
    return await _effect(n, ctx)


async def _effect(n: int, ctx: JobContext[Any]) -> int:
    with open(LEDGER, "a") as ledger:  # O_APPEND: survives a SIGKILL of this process
        ledger.write(f"{ctx.job_id} {os.getpid()} {time.time()}\n")
    await asyncio.sleep(random.uniform(0, 0.02))
    await queue.redis.set(f"effect:{queue.name}:{ctx.job_id}", os.getpid(), nx=True)
    return n


@queue.task(lease=1.0, retries=0, timeout=60)
async def slow_effect(seconds: float, ctx: JobContext[Any] = INJECTED) -> str:
    with open(LEDGER, "a") as ledger:
        ledger.write(f"{ctx.job_id} {os.getpid()} {time.time()}\n")
    await asyncio.sleep(seconds)
    return ctx.worker_id
