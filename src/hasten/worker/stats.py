"""What a worker has done since it started."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerStats"]


@dataclass(slots=True)
class WorkerStats:
    """Counters of one worker, by how each claimed job ended."""

    claimed: int = 0
    complete: int = 0
    failed: int = 0
    retried: int = 0
    aborted: int = 0
    released: int = 0
    fenced: int = 0
    reclaimed: int = 0

    def count(self, status: str) -> None:
        """Count one run that ended with *status* (see `Claim.status`)."""
        if status == "complete":
            self.complete += 1
        elif status == "retrying":
            self.retried += 1
        elif status == "released":
            self.released += 1
        elif status == "aborted":
            self.aborted += 1
        else:
            self.failed += 1
