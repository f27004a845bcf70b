"""Notice when a job blocks the event loop (sync code in an async task).

A blocked loop renews no lease: past the lease the job is taken over and runs twice. The
watchdog thread sees the loop stop ticking and names the jobs that were running, once
the block passes a third of the shortest lease held.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LoopWatchdog"]

log = logging.getLogger("hasten.worker")

_TICK_S = 0.05


class LoopWatchdog:
    """A daemon thread that warns when the loop has not run a callback for too long."""

    def __init__(self, threshold_s: Callable[[], float], running_tasks: Callable[[], list[str]]) -> None:
        self._threshold_s = threshold_s
        self._running_tasks = running_tasks
        self._beat = time.monotonic()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._watch, name="hasten-watchdog", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tick()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _tick(self) -> None:
        self._beat = time.monotonic()
        if not self._stopped.is_set() and self._loop is not None:
            self._loop.call_later(_TICK_S, self._tick)

    def _watch(self) -> None:
        reported = False
        while not self._stopped.wait(_TICK_S):
            blocked = time.monotonic() - self._beat
            threshold = self._threshold_s()
            if blocked > threshold and not reported:
                reported = True
                try:
                    tasks = ", ".join(sorted(set(self._running_tasks()))) or "no job"
                except RuntimeError:  # the running set changed under us; say less
                    tasks = "unknown"
                log.warning(
                    "the event loop has been blocked for %.1fs (running: %s): sync code in an "
                    "async task? Leases are not renewed while it lasts",
                    blocked,
                    tasks,
                    extra={"blocked_s": blocked, "tasks": tasks},
                )
            elif blocked <= threshold:
                reported = False
