"""A handle on one job: `Job`, its `JobStatus` and `JobInfo`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hasten.errors import JobAborted, JobExpired, JobFailed, JobNotFound, ResultTimeout

if TYPE_CHECKING:
    from hasten.progress import ProgressInfo
    from hasten.queue import Queue
    from hasten.signature import TaskSignature

__all__ = ["Job", "JobInfo", "JobStatus"]

R = TypeVar("R")


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Waiting for a worker."""
    SCHEDULED = "scheduled"
    """Waiting for its run-at time."""
    RUNNING = "running"
    """A worker holds its lease."""
    RETRYING = "retrying"
    """Failed an attempt; waiting for its backoff before the next one."""
    COMPLETE = "complete"
    FAILED = "failed"
    ABORTED = "aborted"
    EXPIRED = "expired"
    """Not started before its expiry; never ran."""
    NOT_FOUND = "not_found"
    """No such job, or its result's TTL ran out."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.ABORTED, JobStatus.EXPIRED})


def _ms(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(float(value)) / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of a job, as `Job.info()` returns it. Times are Redis's clock, in UTC."""

    id: str
    queue: str
    status: JobStatus
    task: str | None = None
    attempts: int = 0
    """Attempts started so far (a run cut short by a crash or shutdown is not counted)."""
    priority: int = 0
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


class Job(Generic[R]):
    """A handle on a job by id; cheap to create, every method asks Redis.

    ```python
    job = await send_welcome.enqueue(42)
    await job.status()               # JobStatus.QUEUED
    await job.result(timeout=10)     # waits (pub/sub, no polling) and returns the typed value
    await job.abort()
    ```
    """

    __slots__ = ("_queue", "_signature", "id")

    def __init__(self, queue: Queue, job_id: str, signature: TaskSignature | None = None) -> None:
        self.id = job_id
        self._queue = queue
        self._signature = signature

    def __repr__(self) -> str:
        return f"<Job {self._queue.name}:{self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.id, other._queue.name) == (self.id, self._queue.name)

    def __hash__(self) -> int:
        return hash((self._queue.name, self.id))

    async def status(self) -> JobStatus:
        return (await self.info()).status

    async def info(self) -> JobInfo:
        return await self._queue._inspect(self.id)

    async def progress(self) -> ProgressInfo | None:
        """The progress the job last reported (None if it never did)."""
        from hasten.progress import read_progress

        return await read_progress(self._queue, self.id)

    async def abort(self) -> bool:
        """Abort the job: a waiting job ends at once, a running one is cancelled on its worker.

        Returns False, changing nothing, when the job is unknown or already finished.
        """
        return await self._queue._abort(self.id)

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the job to finish and return its value.

        Raises `JobFailed`, `JobAborted`, `JobExpired`, `JobNotFound`, or `ResultTimeout`
        when *timeout* seconds pass first (None waits as long as it takes).
        """
        record = await self._queue._wait_for_record(self.id, timeout)
        if record is None:
            if await self.status() is JobStatus.NOT_FOUND:
                raise JobNotFound(f"no job {self.id} in queue {self._queue.name}", job_id=self.id)
            raise ResultTimeout(f"job {self.id} did not finish within {timeout}s", job_id=self.id)
        return self._queue._decode_result(self.id, record, self._signature)  # type: ignore[no-any-return]


def raise_for_record(job_id: str, record: dict[str, Any]) -> None:
    """Raise the `JobError` a final non-success record stands for."""
    status = record.get("s")
    if status == JobStatus.FAILED:
        raise JobFailed(
            job_id=job_id,
            error_type=str(record.get("et") or record.get("r") or "Error"),
            error_message=str(record.get("em") or ""),
            traceback=str(record.get("tb") or ""),
        )
    if status == JobStatus.ABORTED:
        raise JobAborted(f"job {job_id} was aborted", job_id=job_id)
    if status == JobStatus.EXPIRED:
        raise JobExpired(f"job {job_id} expired before it started", job_id=job_id)


def info_from_record(job_id: str, queue: str, record: dict[str, Any]) -> JobInfo:
    return JobInfo(
        id=job_id,
        queue=queue,
        status=JobStatus(record["s"]),
        task=record.get("t"),
        attempts=int(record.get("a") or 0),
        priority=int(record.get("p") or 0),
        enqueued_at=_ms(record.get("eq")),
        started_at=_ms(record.get("st")),
        finished_at=_ms(record.get("ft")),
        worker_id=record.get("w"),
        error_type=record.get("et") or (record.get("r") if record["s"] == "failed" else None),
        error_message=record.get("em"),
        traceback=record.get("tb"),
    )


def parse_header(body: bytes) -> tuple[int, int, int, bytes]:
    """Split a stored job body into (priority, lease ms, enqueued ms, payload)."""
    head, _, payload = body.partition(b"|")
    priority, lease, enqueued = head.split(b",")
    return int(priority), int(lease), int(enqueued), payload


def ms_to_datetime(value: Any) -> datetime | None:
    return _ms(value)
