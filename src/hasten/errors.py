"""Every error hasten raises, and the two a job may raise itself.

The hierarchy::

    HastenError
    ├── ConfigurationError        a task, queue or worker is set up wrongly
    ├── EnqueueError              nothing was written to Redis
    │   ├── ArgumentError         the call does not match the task's signature (also a TypeError)
    │   ├── SerializationError    a value cannot be serialized
    │   └── PayloadTooLarge       the encoded job is over the size limit
    ├── RedisError                Redis cannot do what was asked
    │   ├── RedisUnavailable      unreachable, timed out, or connection lost
    │   ├── UnsupportedRedis      the server is older than hasten supports
    │   └── QueueFull             Redis is at maxmemory and refuses writes
    ├── JobError                  what `Job.result()` raises about a job
    │   ├── JobNotFound           no such job (or its result expired)
    │   ├── ResultTimeout         the job did not finish in time (also a TimeoutError)
    │   ├── JobFailed             the job raised; carries the remote type, message, traceback
    │   ├── JobAborted            the job was aborted
    │   └── JobExpired            the job was not started before its expiry
    ├── DecodeError               a stored job cannot be decoded (a worker fails it, never runs it)
    │   └── SignatureError        a pickled job's signature does not verify
    └── Retry                     raised by a job to be retried, optionally after a delay
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "ArgumentError",
    "ConfigurationError",
    "DecodeError",
    "EnqueueError",
    "HastenError",
    "JobAborted",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobNotFound",
    "PayloadTooLarge",
    "QueueFull",
    "RedisError",
    "RedisUnavailable",
    "ResultTimeout",
    "Retry",
    "SerializationError",
    "SignatureError",
    "UnsupportedRedis",
]


class HastenError(Exception):
    """The base of every error hasten raises."""


class ConfigurationError(HastenError):
    """Raised when a task, queue or worker is defined in a way hasten cannot run."""


class EnqueueError(HastenError):
    """Raised when a job cannot be enqueued; nothing was written to Redis."""


class ArgumentError(EnqueueError, TypeError):
    """Raised when enqueue arguments do not match the task's signature or type hints."""


class SerializationError(EnqueueError):
    """Raised when an argument or a result cannot be serialized."""


class PayloadTooLarge(EnqueueError):
    """Raised when an encoded job exceeds the queue's `max_payload_bytes`."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"job payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class RedisError(HastenError):
    """Raised when Redis cannot do what was asked."""


class RedisUnavailable(RedisError):
    """Raised when Redis cannot be reached or does not answer within the configured timeout."""


class UnsupportedRedis(RedisError):
    """Raised when the Redis server is older than the minimum hasten supports."""


class QueueFull(RedisError):
    """Raised when Redis is at `maxmemory` and refuses new jobs."""


class JobError(HastenError):
    """The base of the errors `Job.result()` raises about a job's outcome."""

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobNotFound(JobError):
    """Raised when no job has this id, or its result has expired."""


class ResultTimeout(JobError, TimeoutError):
    """Raised when a job does not finish within the timeout given to `Job.result()`."""


class JobFailed(JobError):
    """Raised when a job failed; carries the remote exception's type, message and traceback."""

    def __init__(self, *, job_id: str, error_type: str, error_message: str, traceback: str) -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {error_message}", job_id=job_id)
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class JobAborted(JobError):
    """Raised when the awaited job was aborted."""


class JobExpired(JobError):
    """Raised when the awaited job expired before a worker started it."""


class DecodeError(HastenError):
    """Raised when a stored job cannot be decoded; the worker fails the job without running it."""


class SignatureError(DecodeError):
    """Raised when a signed payload's HMAC does not match its queue, job id and bytes."""


class Retry(HastenError):
    """Raise inside a job to retry it, counting an attempt.

    ```python
    raise Retry(delay=30)                     # in 30 seconds
    raise Retry(delay=timedelta(minutes=5))   # in 5 minutes
    raise Retry()                             # after the task's backoff
    ```
    """

    def __init__(self, delay: float | timedelta | None = None) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if seconds is not None and seconds < 0:
            raise ValueError("Retry delay must not be negative")
        super().__init__("retry requested" if seconds is None else f"retry in {seconds:g}s")
        self.delay = seconds
