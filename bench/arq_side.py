"""arq's side of the benchmark: its jobs and measurement entry points.

Run by bench/run.py with arq's own venv (arq needs redis<6): ``.venv-bench-arq/bin/python
bench/arq_side.py COMMAND ...``. Everything runs on asyncio's default event loop, and the
worker at `arq.worker.Worker` defaults (what the ``arq`` command runs, minus its logging).
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Sequence
from typing import Any

import redis
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.version import VERSION
from arq.worker import Worker
from common import CLOCK, SLEEP_S, emit, job_args, parse_args, ready, send_paced, worker_report

GATHER_CHUNK = 1_000
"""arq has no bulk enqueue: its fastest way is to gather this many `enqueue_job` calls at once."""

Ctx = dict[str, Any]


async def noop(ctx: Ctx, i: int) -> None:
    CLOCK.started()
    CLOCK.ended()


async def sleep(ctx: Ctx, i: int) -> None:
    CLOCK.started()
    await asyncio.sleep(SLEEP_S)
    CLOCK.ended()


async def stamp(ctx: Ctx, sent: float) -> None:
    CLOCK.stamped(sent)
    CLOCK.started()
    CLOCK.ended()


async def carry(ctx: Ctx, data: str) -> None:
    CLOCK.started()
    CLOCK.ended()


FUNCTIONS = (noop, sleep, stamp, carry)


async def connect(url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(url))


async def enqueue_all(pool: ArqRedis, task: str, args: Sequence[int | str], mode: str) -> None:
    if mode == "single":
        for arg in args:
            await pool.enqueue_job(task, arg)
        return
    for i in range(0, len(args), GATHER_CHUNK):
        await asyncio.gather(*(pool.enqueue_job(task, arg) for arg in args[i : i + GATHER_CHUNK]))


async def enqueue(url: str, task: str, n: int, mode: str, payload_bytes: int) -> None:
    args = job_args(task, n, payload_bytes)
    pool = await connect(url)
    try:
        began = time.perf_counter()
        await enqueue_all(pool, task, args, mode)
        seconds = time.perf_counter() - began
    finally:
        await pool.aclose()
    emit({"jobs": n, "seconds": seconds})


def work(url: str, concurrency: int | None, burst: bool) -> None:
    settings = RedisSettings.from_dsn(url)
    if concurrency is None:
        worker = Worker(FUNCTIONS, redis_settings=settings, burst=burst)
    else:
        worker = Worker(FUNCTIONS, redis_settings=settings, burst=burst, max_jobs=concurrency)
    ready()
    worker.run()
    stats = {"complete": worker.jobs_complete, "failed": worker.jobs_failed, "retried": worker.jobs_retried}
    emit(worker_report(stats))


async def send(url: str, n: int, interval: float) -> None:
    pool = await connect(url)
    try:
        jobs = await send_paced(n, interval, lambda: pool.enqueue_job("stamp", time.time()))
        for job in jobs:
            if job is None:
                raise RuntimeError("arq refused a stamp job as a duplicate")
            await job.result(timeout=30)
    finally:
        await pool.aclose()
    emit({"jobs": n})


def versions() -> None:
    emit(
        {
            "library": f"arq {VERSION}",
            "python": platform.python_version(),
            "redis-py": redis.__version__,
            "event loop": "asyncio default loop",
        }
    )


def main() -> None:
    args = parse_args()
    if args.command == "versions":
        versions()
    elif args.command == "enqueue":
        asyncio.run(enqueue(args.url, args.task, args.n, args.mode, args.payload_bytes))
    elif args.command == "worker":
        work(args.url, args.concurrency, args.burst)
    else:
        asyncio.run(send(args.url, args.n, args.interval))


if __name__ == "__main__":
    main()
