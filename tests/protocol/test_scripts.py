from __future__ import annotations

from typing import Any

from hasten import Queue


async def test_scripts_are_reloaded_after_the_cache_is_flushed(queue: Queue, start_worker: Any) -> None:
    @queue.task
    async def double(n: int) -> int:
        return n * 2

    async with start_worker(queue):
        assert await (await double.enqueue(1)).result(timeout=10) == 2
        await queue.redis.script_flush()
        # Single and pipelined enqueues, and the worker's own calls, all recover.
        assert await (await double.enqueue(2)).result(timeout=10) == 4
        await queue.redis.script_flush()
        jobs = await double.enqueue_many([double.prepare(i) for i in range(1200)])
        assert [await j.result(timeout=10) for j in jobs[:3]] == [0, 2, 4]
        assert (await queue.job(jobs[-1].id).result(timeout=10)) == 2398
