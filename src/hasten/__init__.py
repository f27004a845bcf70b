"""hasten: an async Redis job queue for Python, made for FastAPI applications.

```python
from hasten import Queue

queue = Queue("emails")

@queue.task(retries=5, timeout=30)
async def send_welcome(user_id: int) -> str: ...

async with queue:
    job = await send_welcome.enqueue(42)
    print(await job.result(timeout=5))
```
Run workers with ``hasten worker app.jobs:queue``.
"""

import logging

from hasten.context import INJECTED, JobContext
from hasten.errors import (
    ArgumentError,
    ConfigurationError,
    DecodeError,
    EnqueueError,
    HastenError,
    JobAborted,
    JobError,
    JobExpired,
    JobFailed,
    JobNotFound,
    PayloadTooLarge,
    QueueFull,
    RedisError,
    RedisUnavailable,
    ResultTimeout,
    Retry,
    SerializationError,
    SignatureError,
    UnsupportedRedis,
)
from hasten.job import Job, JobInfo, JobStatus
from hasten.middleware import JobOutcome, Middleware
from hasten.options import TaskOptions
from hasten.progress import Progress, ProgressInfo
from hasten.queue import Queue
from hasten.settings import Backoff, Settings
from hasten.task import JobRequest, Task
from hasten.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ArgumentError",
    "Backoff",
    "ConfigurationError",
    "DecodeError",
    "EnqueueError",
    "HastenError",
    "INJECTED",
    "Job",
    "JobAborted",
    "JobContext",
    "JobError",
    "JobExpired",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobOutcome",
    "JobRequest",
    "JobStatus",
    "Middleware",
    "PayloadTooLarge",
    "Progress",
    "ProgressInfo",
    "Queue",
    "QueueFull",
    "RedisError",
    "RedisUnavailable",
    "ResultTimeout",
    "Retry",
    "SerializationError",
    "Settings",
    "SignatureError",
    "Task",
    "TaskOptions",
    "UnsupportedRedis",
    "Worker",
]

logging.getLogger("hasten").addHandler(logging.NullHandler())
