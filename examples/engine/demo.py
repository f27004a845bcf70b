"""`make demo-engine`: a producer (this script) and a worker process, talking only through Redis.

The worker is a separate process, started the way you would start it in production::

    python -m hasten worker examples.engine.demo_jobs:queue --concurrency 20

Its log lines are shown here prefixed with ``[worker]``. The demo walks through jobs and
their results, a retry, a delayed job, a failure with its remote traceback, and priorities,
then stops the worker with SIGTERM and removes its own throwaway queue from Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from types import TracebackType

# Run as a script, this file has examples/engine/ on sys.path, so its tasks module is `demo_jobs`.
from demo_jobs import QUEUE_NAME, add, charge, import_invoice, queue, remind, render, shout

from hasten import Job, JobFailed

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the worker runs there and imports `examples.engine.demo_jobs`."""

RESULT_TIMEOUT = 10.0
"""Seconds to wait for any one result; every job here takes well under one."""


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def say(text: str, prefix: str = "  ") -> None:
    """Print narration line by line, flushed so it shows live even through a pipe."""
    for line in text.splitlines():
        print(prefix + line, flush=True)


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None, "a finished job has both times"
    return (end - start).total_seconds()


class WorkerProcess:
    """``python -m hasten worker examples.engine.demo_jobs:queue`` in a child process.

    ```python
    async with WorkerProcess(concurrency=20):   # returns once the worker serves the queue
        ...                                     # on exit: SIGTERM, then wait for it to end
    ```
    """

    STARTUP_TIMEOUT = 15.0
    SHUTDOWN_TIMEOUT = 15.0

    def __init__(self, *, concurrency: int) -> None:
        self.concurrency = concurrency
        self._process: asyncio.subprocess.Process | None = None
        self._log_pump: asyncio.Task[None] | None = None
        self._serving = asyncio.Event()

    async def __aenter__(self) -> WorkerProcess:
        command = [sys.executable, "-m", "hasten", "worker", "examples.engine.demo_jobs:queue"]
        command += ["--concurrency", str(self.concurrency)]
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        # HASTEN_REDIS_URL and HASTEN_DEMO_QUEUE are inherited from this process.
        env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
        say(f"$ {' '.join(['python', *command[1:]])}")
        self._process = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._log_pump = asyncio.create_task(self._show_log())
        try:
            async with asyncio.timeout(self.STARTUP_TIMEOUT):
                await self._serving.wait()
            if self._log_pump.done():  # its output ended: the worker exited during startup
                code = await self._process.wait()
                raise RuntimeError(f"the worker exited with code {code} before serving the queue")
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM: the worker finishes its running jobs, claims no more, and exits."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.returncode is None:
            say("sending SIGTERM to the worker")
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.SHUTDOWN_TIMEOUT):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            code = await process.wait()
            say(f"the worker did not stop within {self.SHUTDOWN_TIMEOUT:.0f}s; killed it")
        if self._log_pump is not None:
            await self._log_pump
        say(f"worker exited with code {code}")

    async def _show_log(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            async for raw in self._process.stdout:
                line = raw.decode(errors="replace").rstrip()
                say(line, prefix="  [worker] ")
                if "serving queue" in line:
                    self._serving.set()
        finally:
            self._serving.set()  # wake __aenter__ if the worker died before it was ready


async def jobs_and_results() -> None:
    section("1. Jobs and their results")
    job = await add.enqueue(2, 3)
    say(f"enqueued add(2, 3) as job {job.id}; status now: {await job.status()}")
    say(f"add(2, 3) returned {await job.result(timeout=RESULT_TIMEOUT)}")

    shout_job = await shout.enqueue("hello from the producer")
    shouted = await shout_job.result(timeout=RESULT_TIMEOUT)
    say(f"shout() is a plain function: the worker ran it in a thread and returned {shouted!r}")

    pairs = [(n, n * n) for n in range(1, 6)]
    jobs = await add.enqueue_many(add.prepare(a, b) for a, b in pairs)
    say(f"enqueue_many: {len(jobs)} add() jobs in one round trip")
    results = await asyncio.gather(*(job.result(timeout=RESULT_TIMEOUT) for job in jobs))
    say("results: " + ", ".join(f"{a}+{b}={sum_}" for (a, b), sum_ in zip(pairs, results, strict=True)))


async def retry() -> None:
    section("2. A retry")
    say("charge() raises ConnectionError on its first attempt; retries=2, backoff 0.2 s")
    job = await charge.enqueue(1042)
    say(f"result: {await job.result(timeout=RESULT_TIMEOUT)!r}")
    info = await job.info()
    say(f"job.info(): status={info.status}, attempts={info.attempts}")


async def delayed_job() -> None:
    section("3. A delayed job")
    job = await remind.with_options(delay=1.5).enqueue("ada")
    info = await job.info()
    due_in = seconds_between(info.enqueued_at, info.scheduled_at)
    say(f"enqueued remind('ada') with delay=1.5; status: {info.status}, due in {due_in:.2f} s")
    say(f"result: {await job.result(timeout=RESULT_TIMEOUT)!r}")
    info = await job.info()
    waited = seconds_between(info.enqueued_at, info.started_at)
    say(f"status: {info.status}; it started {waited:.2f} s after it was enqueued")


async def failure() -> None:
    section("4. A failure, with the worker's traceback")
    job = await import_invoice.enqueue("EUR twelve")
    say("import_invoice('EUR twelve') has retries=0, so its first exception is final")
    try:
        await job.result(timeout=RESULT_TIMEOUT)
    except JobFailed as exc:
        say(f"job.result() raised JobFailed: {exc}")
        say(f"exc.error_type:    {exc.error_type}")
        say(f"exc.error_message: {exc.error_message}")
        say("exc.traceback:")
        say(exc.traceback, prefix="    | ")
    else:
        raise RuntimeError("import_invoice() was expected to fail")


async def priorities() -> None:
    section("5. Priorities")
    say("With no worker running, enqueue 5 low-priority jobs, then 1 with priority=10:")
    documents = [f"report-{n}" for n in range(1, 6)]
    low = await render.enqueue_many(render.prepare(document) for document in documents)
    urgent = await render.with_options(priority=10).enqueue("URGENT-invoice")
    labels: dict[Job[str], str] = {}
    for job, document in zip(low, documents, strict=True):
        labels[job] = f"{document} (priority 0)"
    labels[urgent] = "URGENT-invoice (priority 10)"
    say("enqueue order: " + ", ".join(labels.values()))

    say("Start a worker with --concurrency 1, so the jobs run one at a time:")
    async with WorkerProcess(concurrency=1):
        await asyncio.gather(*(job.result(timeout=RESULT_TIMEOUT) for job in labels))
        infos = {job: await job.info() for job in labels}
        first_start = min(info.started_at for info in infos.values() if info.started_at is not None)
        started = sorted(labels, key=lambda job: seconds_between(first_start, infos[job].started_at))
        say("the order in which they started (from job.info().started_at):")
        for position, job in enumerate(started, 1):
            offset = seconds_between(first_start, infos[job].started_at)
            say(f"  {position}. +{offset:.2f}s  {labels[job]}")
        if started[0] != urgent:
            raise RuntimeError("the priority-10 job was expected to start first")
        say("the priority-10 job was enqueued last and started first")
        section("Stopping the worker")


async def remove_demo_queue() -> None:
    """A real queue lives on; this throwaway one deletes its own keys (and nothing else)."""
    pattern = f"{queue.keys.prefix}*"  # "hasten:{demo-...}:*": the keys of this queue only
    keys = [key async for key in queue.redis.scan_iter(match=pattern, count=500)]
    if keys:
        await queue.redis.delete(*keys)
    section("Cleanup")
    say(f"deleted the {len(keys)} Redis keys of queue {QUEUE_NAME}")


async def main() -> None:
    print(f"hasten demo: producer pid {os.getpid()}, queue {QUEUE_NAME}", flush=True)
    async with queue:  # connect and check Redis (from HASTEN_REDIS_URL)
        try:
            section("Starting a worker process")
            async with WorkerProcess(concurrency=20):
                await jobs_and_results()
                await retry()
                await delayed_job()
                await failure()
                section("Stopping the worker")
            await priorities()
        finally:
            await remove_demo_queue()
    print("\ndone.", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
