"""The names of a queue's Redis keys.

Every key of queue ``emails`` starts with ``hasten:{emails}:``; the braces are a Redis
Cluster hash tag, so one queue lives in one slot and its scripts may touch all its keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from hasten.errors import ConfigurationError

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one queue."""

    queue: str
    prefix: str

    @classmethod
    def for_queue(cls, name: str) -> Keys:
        if not name or any(c in name for c in "{}\r\n ") or len(name) > 200:
            raise ConfigurationError(
                f"invalid queue name {name!r}: use 1-200 characters without braces or spaces"
            )
        return cls(queue=name, prefix=f"hasten:{{{name}}}:")

    @property
    def jobs(self) -> str:
        return self.prefix + "jobs"

    @property
    def delayed(self) -> str:
        return self.prefix + "delayed"

    @property
    def prios(self) -> str:
        return self.prefix + "prios"

    @property
    def wake(self) -> str:
        return self.prefix + "wake"

    def wake_worker(self, worker_id: str) -> str:
        """One worker's own wake list, so a local timer or a stop wakes only that worker."""
        return f"{self.prefix}wake:{worker_id}"

    @property
    def control(self) -> str:
        return self.prefix + "control"

    @property
    def dlq(self) -> str:
        return self.prefix + "dlq"

    @property
    def dlq_records(self) -> str:
        return self.prefix + "dlq:records"

    @property
    def dlq_bodies(self) -> str:
        return self.prefix + "dlq:bodies"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def ready(self, priority: int) -> str:
        return f"{self.prefix}ready:{priority}"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}result:{job_id}"

    def progress(self, job_id: str) -> str:
        """A running job's last progress (a key with a TTL, and a channel of the same name)."""
        return f"{self.prefix}progress:{job_id}"

    def done_channel(self, job_id: str) -> str:
        return f"{self.prefix}done:{job_id}"
