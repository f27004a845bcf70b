from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hasten import JobStatus, Queue
from tests.apps import basic
from tests.conftest import hasten_process, wait_for_status


@pytest.fixture
async def app_queue(redis_url: str, queue_name: str) -> AsyncIterator[Queue]:
    """The tests/apps/basic.py queue, pointed at this test's Redis and queue name."""
    queue = Queue(queue_name, redis_url=redis_url)
    for task in basic.queue.tasks.values():
        queue.task(name=task.name, **_options(task))(task.fn)
    async with queue:
        yield queue


def _options(task: Any) -> dict[str, Any]:
    o = task.options
    return {"retries": o.retries, "timeout": o.timeout, "backoff": o.backoff}


def _env(redis_url: str, queue_name: str, tmp_path: Path) -> dict[str, str]:
    return {"HASTEN_REDIS_URL": redis_url, "HASTEN_TEST_QUEUE": queue_name, "HASTEN_TEST_DIR": str(tmp_path)}


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def _task(queue: Queue, name: str) -> Any:
    return queue.tasks[f"tests.apps.basic.{name}"]


async def _pids_running(queue: Queue, count: int) -> set[int]:
    """The worker processes that run jobs, until *count* of them are seen (or 30 s pass)."""
    whoami = _task(queue, "whoami")
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < count and time.monotonic() < deadline:
        jobs = await whoami.enqueue_many([whoami.prepare() for _ in range(10)])
        pids.update([await j.result(timeout=20) for j in jobs])
    return pids


async def test_worker_command_runs_jobs(app_queue: Queue, redis_url: str, tmp_path: Path) -> None:
    process = hasten_process(
        "worker", "tests.apps.basic:queue", "-c", "10", env=_env(redis_url, app_queue.name, tmp_path)
    )
    try:
        add = _task(app_queue, "add")
        jobs = await add.enqueue_many([add.prepare(i, i) for i in range(20)])
        assert [await j.result(timeout=20) for j in jobs] == [2 * i for i in range(20)]
        fail_once = _task(app_queue, "fail_once")
        assert await (await fail_once.enqueue("k1")).result(timeout=20) == "second attempt"
    finally:
        code, err = _stop(process)
    assert code == 0, err
    assert "serving queue" in err


async def test_burst_drains_and_exits(app_queue: Queue, redis_url: str, tmp_path: Path) -> None:
    add = _task(app_queue, "add")
    jobs = await add.enqueue_many([add.prepare(i, 1) for i in range(50)])
    process = hasten_process(
        "worker", "tests.apps.basic:queue", "--burst", env=_env(redis_url, app_queue.name, tmp_path)
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert all([await j.status() is JobStatus.COMPLETE for j in jobs])


async def test_workers_option_runs_several_processes(
    app_queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    process = hasten_process(
        "worker",
        "tests.apps.basic:queue",
        "--workers",
        "2",
        "-c",
        "1",
        env=_env(redis_url, app_queue.name, tmp_path),
    )
    try:
        pids = await _pids_running(app_queue, 2)
        assert len(pids) == 2
        assert process.pid not in pids
    finally:
        code, err = _stop(process)
    assert code == 0, err


async def test_workers_option_replaces_a_worker_process_that_dies(
    app_queue: Queue, redis_url: str, tmp_path: Path
) -> None:
    process = hasten_process(
        "worker", "tests.apps.basic:queue", "--workers", "2", "-c", "1",
        env=_env(redis_url, app_queue.name, tmp_path),
    )  # fmt: skip
    try:
        first = await _pids_running(app_queue, 2)
        assert len(first) == 2
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # Until the supervisor has reaped it: a job sent to a worker still dying would wait
        # for its lease to run out (crash recovery, tested elsewhere), not for a new worker.
        while Path(f"/proc/{victim}").exists():
            await asyncio.sleep(0.05)
        later = await _pids_running(app_queue, 2)
        assert victim not in later and len(later - first) == 1, "a new process took the dead one's place"
    finally:
        code, err = _stop(process)
    assert code == 0, err
    assert f"worker process {victim} died (signal 9)" in err


def test_workers_option_does_not_restart_a_misconfigured_worker(redis_url: str) -> None:
    process = hasten_process(
        "worker", "tests.apps.web_only:queue", "--workers", "2", env={"HASTEN_REDIS_URL": redis_url}
    )
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "task notify, parameter 'user'" in err
    assert "died" not in err, "a worker that cannot run as configured is not restarted"


async def test_sigterm_lets_running_jobs_finish(app_queue: Queue, redis_url: str, tmp_path: Path) -> None:
    process = hasten_process(
        "worker", "tests.apps.basic:queue", env=_env(redis_url, app_queue.name, tmp_path)
    )
    try:
        sleep_for = _task(app_queue, "sleep_for")
        job = await sleep_for.enqueue(1.0)
        await wait_for_status(job, JobStatus.RUNNING)
        process.send_signal(signal.SIGTERM)
        assert await job.result(timeout=20) > 0.9  # it ran its full second, not cut short
        process.wait(20)
    finally:
        code, err = _stop(process)
    assert code == 0, err
    assert "SIGTERM received" in err


async def test_second_signal_releases_running_jobs(app_queue: Queue, redis_url: str, tmp_path: Path) -> None:
    process = hasten_process(
        "worker", "tests.apps.basic:queue", env=_env(redis_url, app_queue.name, tmp_path)
    )
    try:
        sleep_for = _task(app_queue, "sleep_for")
        job = await sleep_for.enqueue(30.0)
        await wait_for_status(job, JobStatus.RUNNING)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        process.wait(20)
    finally:
        code, err = _stop(process)
    assert code == 0, err
    info = await job.info()
    assert info.status is JobStatus.QUEUED  # back in the queue for another worker ...
    assert info.attempts == 0  # ... without using up an attempt


def test_bad_target_is_a_clear_error(tmp_path: Path) -> None:
    for target, message in [
        ("tests.apps.nope:queue", "No module"),
        ("tests.apps.basic:missing", "no attribute"),
    ]:
        process = hasten_process("worker", target)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 2
        assert message in err


def test_version() -> None:
    process = hasten_process("--version")
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.startswith("hasten ")


APP_SOURCE = """
import os
from hasten import Queue

queue = Queue(os.environ["HASTEN_TEST_QUEUE"])


@queue.task(name="version")
async def version() -> str:
    return "{version}"
"""


async def test_reload_restarts_the_worker_on_code_changes(
    redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    app = tmp_path / "reload_app.py"
    app.write_text(APP_SOURCE.format(version="v1"))
    process = hasten_process(
        "worker", "reload_app:queue", "--reload", env=_env(redis_url, queue_name, tmp_path), cwd=tmp_path
    )
    queue = Queue(queue_name, redis_url=redis_url)

    @queue.task(name="version")
    async def version() -> str: ...

    try:
        async with queue:
            assert await (await version.enqueue()).result(timeout=30) == "v1"
            app.write_text(APP_SOURCE.format(version="v2"))
            seen = "v1"
            deadline = time.monotonic() + 30
            while seen != "v2" and time.monotonic() < deadline:
                seen = await (await version.enqueue()).result(timeout=30)
                await asyncio.sleep(0.2)
            assert seen == "v2"
    finally:
        _stop(process)


def test_worker_refuses_to_start_with_a_request_only_dependency(redis_url: str) -> None:
    process = hasten_process("worker", "tests.apps.web_only:queue", env={"HASTEN_REDIS_URL": redis_url})
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "task notify, parameter 'user': dependency current_user needs a Request" in err
