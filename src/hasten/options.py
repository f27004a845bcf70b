"""Task options (set at decoration) and enqueue options (set per call)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from hasten.errors import ArgumentError, ConfigurationError
from hasten.settings import Backoff

__all__ = ["EnqueueOptions", "TaskOptions"]

PRIORITY_LIMIT = 1_000_000
DEFAULT_RESULT_TTL = 3600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskOptions:
    """How a task's jobs run, unless an enqueue call overrides it.

    ```python
    @queue.task(retries=5, timeout=30, backoff=Backoff(base=2), no_retry=(ValueError,))
    ```
    """

    name: str = ""
    retries: int = 3
    """Retries after the first attempt (so 4 attempts in all by default)."""
    timeout: float | None = 300.0
    """Seconds a run may take before it is cancelled and counted as a failed attempt."""
    backoff: Backoff = field(default_factory=Backoff)
    no_retry: tuple[type[BaseException], ...] = ()
    """Exception types that fail the job at once, without retries."""
    result_ttl: float = DEFAULT_RESULT_TTL
    """Seconds a result (success or failure) is kept."""
    lease: float = 30.0
    """Seconds a worker holds a job without renewing; a dead worker's jobs return after it."""
    priority: int = 0
    """Default priority; higher runs first."""

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigurationError("retries must be >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError("timeout must be positive or None")
        if self.result_ttl <= 0 or self.lease < 0.1:
            raise ConfigurationError("result_ttl must be positive and lease at least 0.1 s")
        _check_priority(self.priority, ConfigurationError)


@dataclass(frozen=True, kw_only=True, slots=True)
class EnqueueOptions:
    """Per-call options, given through `Task.with_options()`."""

    job_id: str | None = None
    delay: float | None = None
    run_at: datetime | None = None
    priority: int | None = None
    expires: float | datetime | None = None
    retries: int | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    lease: float | None = None

    @classmethod
    def build(cls, **given: Any) -> EnqueueOptions:
        if given.get("delay") is not None and given.get("run_at") is not None:
            raise ArgumentError("pass delay or run_at, not both")
        for name in ("delay", "expires", "timeout", "result_ttl", "lease"):
            if isinstance(given.get(name), timedelta):
                given[name] = given[name].total_seconds()
        for name in ("run_at", "expires"):
            value = given.get(name)
            if isinstance(value, datetime) and value.tzinfo is None:
                raise ArgumentError(f"{name} must be timezone-aware (naive datetimes are ambiguous)")
        job_id = given.get("job_id")
        if job_id is not None and (not isinstance(job_id, str) or not 0 < len(job_id) <= 256):
            raise ArgumentError("job_id must be a string of 1 to 256 characters")
        if given.get("priority") is not None:
            _check_priority(given["priority"], ArgumentError)
        delay = given.get("delay")
        if delay is not None and delay < 0:
            raise ArgumentError("delay must not be negative")
        return cls(**given)

    def merged(self, other: EnqueueOptions) -> EnqueueOptions:
        """These options with every field *other* sets replaced."""
        changes = {f.name: getattr(other, f.name) for f in fields(other)}
        changes = {k: v for k, v in changes.items() if v is not None}
        if "delay" in changes:
            changes["run_at"] = None
        elif "run_at" in changes:
            changes["delay"] = None
        return replace(self, **changes)


def _check_priority(priority: int, error: type[Exception]) -> None:
    if not isinstance(priority, int) or not -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT:
        raise error(f"priority must be an integer from {-PRIORITY_LIMIT} to {PRIORITY_LIMIT}")
