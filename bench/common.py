"""What both libraries' sides share: the command line, the job clock, the job arguments.

Standard library only: this module is imported by each library's side script, which runs
in that library's own virtualenv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "CLOCK",
    "READY",
    "SLEEP_S",
    "TASKS",
    "JobClock",
    "emit",
    "job_args",
    "parse_args",
    "ready",
    "send_paced",
    "worker_report",
]

T = TypeVar("T")

SLEEP_S = 0.01
"""How long a ``sleep`` job sleeps."""

TASKS = ("noop", "sleep", "stamp", "carry")
"""The jobs each side defines: ``noop(i)``, ``sleep(i)``, ``stamp(sent)`` and ``carry(data)``."""


@dataclass(slots=True)
class JobClock:
    """What the jobs of one worker process saw, with ``time.time()`` as the spec asks."""

    first_start: float | None = None
    last_end: float | None = None
    jobs: int = 0
    latencies: list[float] = field(default_factory=list)

    def started(self) -> None:
        if self.first_start is None:
            self.first_start = time.time()

    def ended(self) -> None:
        self.last_end = time.time()
        self.jobs += 1

    def stamped(self, sent: float) -> None:
        """Record a ``stamp`` job: called first thing, with the enqueue-time argument."""
        self.latencies.append(time.time() - sent)


CLOCK = JobClock()
"""The clock of this process's jobs (one worker per process)."""


def worker_report(stats: dict[str, Any]) -> dict[str, Any]:
    """What a worker process prints when it exits."""
    return {
        "first_start": CLOCK.first_start,
        "last_end": CLOCK.last_end,
        "jobs": CLOCK.jobs,
        "latencies": CLOCK.latencies,
        # Linux reports ru_maxrss in KiB.
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stats": stats,
    }


def job_args(task: str, n: int, payload_bytes: int) -> list[int] | list[str]:
    """The argument of each of *n* jobs: ASCII strings of *payload_bytes* for ``carry``, else ints."""
    if task == "carry":
        return [str(i).rjust(payload_bytes, "x") for i in range(n)]
    return list(range(n))


async def send_paced(n: int, interval: float, send: Callable[[], Awaitable[T]]) -> list[T]:
    """Call *send* *n* times, one call every *interval* seconds (on a fixed schedule, no drift)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent: list[T] = []
    for i in range(n):
        await asyncio.sleep(max(0.0, began + i * interval - loop.time()))
        sent.append(await send())
    return sent


READY = "ready"
"""The line a worker process prints once it is about to serve."""


def ready() -> None:
    print(READY, flush=True)


def emit(data: dict[str, Any]) -> None:
    """Hand a result to the driver: one JSON line on stdout, the last one it reads."""
    print(json.dumps(data), flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line both side scripts take, so the driver calls them alike.

    Also sends both libraries' logs to stderr at WARNING, so neither pays for per-job INFO lines.
    """
    parser = argparse.ArgumentParser(description="One library's side of the hasten benchmark.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("versions", help="print the versions in use")

    enqueue = commands.add_parser("enqueue", help="enqueue jobs and time it")
    enqueue.add_argument("url")
    enqueue.add_argument("--task", choices=TASKS, default="noop")
    enqueue.add_argument("--n", type=int, required=True)
    enqueue.add_argument("--mode", choices=("bulk", "single"), default="bulk")
    enqueue.add_argument("--payload-bytes", type=int, default=100)

    worker = commands.add_parser("worker", help="run one worker; print 'ready', then a report at exit")
    worker.add_argument("url")
    worker.add_argument("--concurrency", type=int, default=None, help="default: the library's own")
    worker.add_argument("--burst", action="store_true")

    send = commands.add_parser("send", help="send stamp jobs at a fixed pace, then wait for them")
    send.add_argument("url")
    send.add_argument("--n", type=int, required=True)
    send.add_argument("--interval", type=float, required=True)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return args
