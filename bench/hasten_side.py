"""hasten's side of the benchmark: its jobs and measurement entry points.

Run by bench/run.py with the project's own venv (``.venv/bin/python bench/hasten_side.py
COMMAND ...``); every coroutine runs on uvloop through `hasten.cli.run_async`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import platform
import time
from collections.abc import Awaitable, Callable

import redis
from common import CLOCK, SLEEP_S, emit, job_args, parse_args, ready, send_paced, worker_report

import hasten
from hasten import Queue, Task, Worker
from hasten.cli import run_async

QUEUE_NAME = "bench"


async def noop(i: int) -> None:
    CLOCK.started()
    CLOCK.ended()


async def sleep(i: int) -> None:
    CLOCK.started()
    await asyncio.sleep(SLEEP_S)
    CLOCK.ended()


async def stamp(sent: float) -> None:
    CLOCK.stamped(sent)
    CLOCK.started()
    CLOCK.ended()


async def carry(data: str) -> None:
    CLOCK.started()
    CLOCK.ended()


JOBS: dict[str, Callable[..., Awaitable[None]]] = {
    "noop": noop,
    "sleep": sleep,
    "stamp": stamp,
    "carry": carry,
}


def make_queue(url: str) -> tuple[Queue, dict[str, Task[..., None]]]:
    """The bench queue on *url*, with every job registered at default options but no retries."""
    queue = Queue(QUEUE_NAME, redis_url=url)
    tasks = {name: queue.task(name=name, retries=0)(fn) for name, fn in JOBS.items()}
    return queue, tasks


def enqueue(url: str, task_name: str, n: int, mode: str, payload_bytes: int) -> None:
    queue, tasks = make_queue(url)
    task = tasks[task_name]
    args = job_args(task_name, n, payload_bytes)

    async def measure() -> None:
        async with queue:
            began = time.perf_counter()
            if mode == "bulk":
                await task.enqueue_many([task.prepare(arg) for arg in args])
            else:
                for arg in args:
                    await task.enqueue(arg)
            seconds = time.perf_counter() - began
        emit({"jobs": n, "seconds": seconds})

    run_async(measure)


def work(url: str, concurrency: int | None, burst: bool) -> None:
    queue, _ = make_queue(url)
    if concurrency is None:
        worker = Worker(queue, burst=burst)
    else:
        worker = Worker(queue, concurrency=concurrency, burst=burst)

    async def serve() -> None:
        try:
            await worker.run()
        finally:
            await queue.close()

    ready()
    run_async(serve)
    emit(worker_report(dataclasses.asdict(worker.stats)))


def send(url: str, n: int, interval: float) -> None:
    queue, tasks = make_queue(url)

    async def produce() -> None:
        async with queue:
            jobs = await send_paced(n, interval, lambda: tasks["stamp"].enqueue(time.time()))
            for job in jobs:
                await job.result(timeout=30)
        emit({"jobs": n})

    run_async(produce)


def versions() -> None:
    emit(
        {
            "library": f"hasten {hasten.__version__}",
            "python": platform.python_version(),
            "redis-py": redis.__version__,
            "event loop": f"uvloop {importlib.metadata.version('uvloop')}",
        }
    )


def main() -> None:
    args = parse_args()
    if args.command == "versions":
        versions()
    elif args.command == "enqueue":
        enqueue(args.url, args.task, args.n, args.mode, args.payload_bytes)
    elif args.command == "worker":
        work(args.url, args.concurrency, args.burst)
    else:
        send(args.url, args.n, args.interval)


if __name__ == "__main__":
    main()
