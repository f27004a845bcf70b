from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from hasten import Queue
from hasten.health import WorkerInfo
from tests.conftest import hasten_process


async def registered(queue: Queue) -> list[WorkerInfo]:
    """The live workers, once the one just started has sent its first heartbeat."""
    for _ in range(500):
        if found := await queue.workers():
            return found
        await asyncio.sleep(0.01)
    return []


async def test_running_worker_is_registered_and_removed_on_stop(queue: Queue, start_worker: Any) -> None:
    assert await queue.workers() == []
    async with start_worker(queue, concurrency=7) as worker:
        (info,) = await registered(queue)
        assert info.id == worker.id
        assert info.concurrency == 7
        assert info.pid == os.getpid()
        assert info.last_seen is not None
    assert await queue.workers() == []


def _check(redis_url: str, queue_name: str) -> subprocess.CompletedProcess[str]:
    env = {"HASTEN_REDIS_URL": redis_url, "HASTEN_TEST_QUEUE": queue_name}
    process = hasten_process("check", "tests.apps.basic:queue", env=env)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


async def test_check_command_reports_live_workers(
    queue: Queue, redis_url: str, queue_name: str, start_worker: Any, tmp_path: Path
) -> None:
    result = _check(redis_url, queue_name)
    assert result.returncode == 1
    assert f"no live worker serves queue {queue_name}" in result.stderr
    async with start_worker(queue) as worker:
        await registered(queue)
        result = _check(redis_url, queue_name)
        assert result.returncode == 0, result.stderr
        assert worker.id in result.stdout


def test_check_fails_when_redis_is_unreachable(queue_name: str) -> None:
    result = _check("redis://127.0.0.1:1/0", queue_name)
    assert result.returncode == 1
    assert "unhealthy" in result.stderr
