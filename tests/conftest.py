from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hasten import Job, JobStatus, Queue, Worker
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def queue(redis_url: str, queue_name: str) -> AsyncIterator[Queue]:
    """A connected queue with a unique name on the session's private Redis."""
    q = Queue(queue_name, redis_url=redis_url)
    async with q:
        yield q


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """Run *worker* in the background for the block's duration, then stop it."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def start_worker() -> Callable[..., Any]:
    def start(queue: Queue, **options: Any) -> Any:
        options.setdefault("handle_signals", False)
        options.setdefault("check_redis", False)
        return running(Worker(queue, **options))

    return start


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until *check* holds: tests poll state a user can observe, with a deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {check}")
        await asyncio.sleep(0.01)


async def wait_for_status(job: Job[Any], status: JobStatus, timeout: float = 10.0) -> None:
    async def reached() -> bool:
        return await job.status() is status

    await eventually(reached, timeout)


def hasten_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, **kwargs: Any
) -> subprocess.Popen[str]:
    """Run ``python -m hasten ...`` in *cwd* (the project root by default), as a user's shell would."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "hasten", *args], cwd=cwd, env=full_env, text=True, **kwargs
    )


def crashy_worker(url: str, queue_name: str, ledger: Path, worker_id: str, *options: str, **env: str) -> Any:
    """A worker process for tests/apps/crashy.py, its output discarded (crash tests kill it)."""
    full_env = {
        "HASTEN_REDIS_URL": url,
        "HASTEN_TEST_QUEUE": queue_name,
        "HASTEN_TEST_LEDGER": str(ledger),
        **env,
    }
    return hasten_process(
        "worker", "tests.apps.crashy:queue", "--id", worker_id, "-q", *options,
        env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def hasten_warnings() -> Iterator[list[str]]:
    """Warnings hasten logs during the test, as messages."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("hasten")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
