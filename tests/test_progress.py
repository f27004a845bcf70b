from __future__ import annotations

from typing import Any

import pytest

from hasten import INJECTED, ArgumentError, JobFailed, Progress, Queue
from hasten.progress import MAX_DATA_BYTES


async def test_bad_progress_is_a_clear_error_in_the_job(queue: Queue, start_worker: Any) -> None:
    @queue.task(retries=0)
    async def report(kind: str, progress: Progress = INJECTED) -> str:
        progress.update(0.1, "started", {"rows": 1})
        if kind == "fraction":
            progress.update(1.5)
        elif kind == "not json":
            progress.update(data={"when": object()})
        elif kind == "too big":
            progress.update(data={"blob": "x" * MAX_DATA_BYTES})
        return kind

    async with start_worker(queue):
        for kind, message in [
            ("fraction", "between 0 and 1"),
            ("not json", "must be a JSON object"),
            ("too big", "the limit is"),
        ]:
            job = await report.enqueue(kind)
            with pytest.raises(JobFailed, match=message) as failure:
                await job.result(timeout=10)
            assert failure.value.error_type == f"{ArgumentError.__module__}.ArgumentError"
            last = await job.progress()
            assert last is not None and (last.message, last.data) == ("started", {"rows": 1})
        fine = await report.enqueue("fine")
        assert await fine.result(timeout=10) == "fine"
