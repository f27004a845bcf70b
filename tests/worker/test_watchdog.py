from __future__ import annotations

import time
from typing import Any

from hasten import Queue


async def test_a_job_that_blocks_the_loop_is_named(
    queue: Queue, start_worker: Any, hasten_warnings: list[str]
) -> None:
    @queue.task(name="blocks-the-loop", lease=1.5)
    async def careless() -> str:
        time.sleep(1.0)  # noqa: ASYNC251 - the mistake this test is about
        return "done"

    @queue.task(name="behaves")
    async def fine() -> str:
        return "done"

    async with start_worker(queue):
        assert await (await fine.enqueue()).result(timeout=10) == "done"
        assert not any("blocked" in m for m in hasten_warnings)
        assert await (await careless.enqueue()).result(timeout=10) == "done"
    blocked = [m for m in hasten_warnings if "event loop has been blocked" in m]
    assert len(blocked) == 1
    assert "blocks-the-loop" in blocked[0]
