"""The consumer side: a `Worker` claims jobs from Redis and runs them."""

from hasten.worker.stats import WorkerStats
from hasten.worker.worker import Worker

__all__ = ["Worker", "WorkerStats"]
