"""Hooks around a worker's jobs: subclass `Middleware` and override what you need.

``before_job`` hooks run in order, ``after_job`` hooks in reverse (an onion). An
exception in a hook is logged and isolated: it never fails the job or kills the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hasten.context import JobContext

if TYPE_CHECKING:
    from hasten.worker.worker import Worker

__all__ = ["JobOutcome", "Middleware"]

log = logging.getLogger("hasten.middleware")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one attempt of a job ended, as `Middleware.after_job` sees it."""

    status: str
    """``complete``, ``failed``, ``retrying``, ``aborted``, ``expired`` or ``released``."""
    duration_s: float
    result: Any = None
    error: BaseException | None = None


class Middleware:
    """A set of no-op hooks; see the module docstring for the order they run in."""

    async def on_worker_start(self, worker: Worker) -> None:
        """Called once when a worker starts, before it claims any job."""

    async def on_worker_stop(self, worker: Worker) -> None:
        """Called once when a worker stops, after its last job."""

    async def before_job(self, ctx: JobContext[Any]) -> None:
        """Called before each attempt of a job runs."""

    async def after_job(self, ctx: JobContext[Any], outcome: JobOutcome) -> None:
        """Called after each attempt of a job, whatever its outcome."""


async def run_hooks(middleware: Sequence[Middleware], hook: str, *args: Any, reverse: bool = False) -> None:
    for item in reversed(middleware) if reverse else middleware:
        try:
            await getattr(item, hook)(*args)
        except Exception:
            log.exception("%s.%s raised; ignored", type(item).__name__, hook)
