"""The worker: claims jobs in batches, runs them, renews their leases, reports outcomes.

One fetch loop claims jobs with the cycle script, which also carries the outcomes of
finished jobs, so a busy worker spends one round trip per batch. When nothing is ready it
blocks on the queue's wake list: Redis wakes it when a job arrives, or when the next
delayed job or lease is due. A flush loop reports outcomes while the fetch loop is
blocked; a renew loop extends leases every third of the shortest lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from hasten.dependencies import plan_dependencies
from hasten.errors import ConfigurationError, RedisError
from hasten.middleware import run_hooks
from hasten.options import DEFAULT_RESULT_TTL
from hasten.protocol.connection import make_client, redis_errors
from hasten.protocol.scripts import SCRIPTS, Arg, pack_rows
from hasten.queue import Queue
from hasten.worker.runner import Claim, Outcome, Runner
from hasten.worker.stats import WorkerStats
from hasten.worker.upkeep import Heartbeat, listen_for_aborts, wait_for_redis
from hasten.worker.watchdog import LoopWatchdog

__all__ = ["Worker"]

log = logging.getLogger("hasten.worker")

_SCRIPT_RESULT_TTL_MS = int(DEFAULT_RESULT_TTL * 1000)
"""TTL of results the scripts write themselves (stalled, aborted while its worker was lost)."""

_PREFETCH_BELOW_S = 0.05
"""Hold a few jobs beyond concurrency while a typical run is shorter than this."""

_HOLD_S = 0.1
"""A held job that has not found a slot within this long is given back."""

_BURST_HORIZON_MS = 5000
"""A burst worker waits for delayed jobs (short retries) due within this long, no later ones."""

_MAX_BLOCK_S = 5.0
"""Longest single blocking wait, so a dead connection is noticed (not a poll: jobs wake us)."""


class Worker:
    """Runs the jobs of one queue.

    ```python
    worker = Worker(queue, concurrency=100)
    await worker.run()            # until SIGTERM/SIGINT or worker.stop()
    await Worker(queue, burst=True).run()   # drain the queue, then return
    ```
    """

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int = 100,
        burst: bool = False,
        worker_id: str | None = None,
        shutdown_grace: float = 30.0,
        max_stalls: int = 3,
        unknown_task_grace: float = 600.0,
        dead_letter_max: int = 10_000,
        dead_letter_age: float = 7 * 24 * 3600.0,
        threads: int | None = None,
        handle_signals: bool = True,
        check_redis: bool = True,
    ) -> None:
        if not 1 <= concurrency <= 1000:
            raise ConfigurationError("concurrency must be between 1 and 1000")
        self.queue = queue
        self.concurrency = concurrency
        self.burst = burst
        self.id = _clean_id(worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}")
        self.shutdown_grace = shutdown_grace
        self.max_stalls = max_stalls
        # How the scripts end jobs nobody reports on: see read_policy in _common.lua.
        self._policy = f"{max_stalls},{_SCRIPT_RESULT_TTL_MS},{dead_letter_max},{int(dead_letter_age * 1000)}"
        self.unknown_task_grace = unknown_task_grace
        self.handle_signals = handle_signals
        self.check_redis = check_redis
        self.stats = WorkerStats()
        self._threads = ThreadPoolExecutor(
            max_workers=threads or min(concurrency, 32), thread_name_prefix="hasten-job"
        )
        self._running: dict[str, Claim] = {}
        """Every job this worker holds a lease on: started, or waiting for a slot."""
        self._waiting: deque[Claim] = deque()
        self._active = 0
        self._typical_run_s = 0.0
        self._outcomes: deque[Outcome] = deque()
        self._slot_freed = asyncio.Event()
        self._outcome_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = False
        """True while the fetch loop waits (for a slot or for Redis), so outcomes need the flush loop."""
        self._block_task: asyncio.Task[Any] | None = None
        self._nudge_task: asyncio.Future[None] | None = None
        self._closing = False
        self._lease_added = asyncio.Event()
        self._offset = [0.0]
        self._offset_known = False
        self._due_ms = -1
        self._started_ms = 0
        self._heartbeat = Heartbeat(queue, self.id, self._describe)
        self._own_wake = queue.keys.wake_worker(self.id)
        self._blocking: Redis | None = None
        self._runner: Runner | None = None
        self._signals = 0

    def __repr__(self) -> str:
        return f"<Worker {self.id} queue={self.queue.name} running={len(self._running)}>"

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until stopped (or, in burst mode, until nothing is left to do)."""
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            # Before anything else: a task whose dependencies a worker cannot resolve is a
            # deployment error, reported at start-up rather than on its first job.
            dependencies = plan_dependencies(self.queue)
            await wait_for_redis(self.queue, self.check_redis, self._stopping)
            lifespan = self.queue.lifespan() if self.queue.lifespan else contextlib.nullcontext()
            async with lifespan as resources:
                self._runner = Runner(
                    self.queue,
                    self.id,
                    resources,
                    self._threads,
                    self.unknown_task_grace,
                    self._offset,
                    dependencies,
                )
                await self._serve()
        finally:
            if self.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            self._threads.shutdown(wait=False, cancel_futures=True)
            if self._blocking is not None:
                await self._blocking.aclose()
                self._blocking = None

    def stop(self, *, graceful: bool = True) -> None:
        """Stop claiming; running jobs get `shutdown_grace` seconds unless not *graceful*."""
        if not graceful:
            self.shutdown_grace = 0
        self._stopping.set()
        if self._block_task is not None:
            # Ending the wait with a marker lets the claim sent with it come back, rather
            # than dropping a reply that may hold leased jobs; cancel only if that fails.
            self._nudge()
            asyncio.get_running_loop().call_later(1.0, self._cancel_block)

    def _cancel_block(self) -> None:
        if self._block_task is not None:
            self._block_task.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "%s received: finishing %d running jobs (up to %.0fs), claiming no more",
                sig.name,
                len(self._running),
                self.shutdown_grace,
            )
            self.stop()
        else:
            log.warning("%s received again: cancelling %d running jobs now", sig.name, len(self._running))
            self.stop(graceful=False)
            self._cancel_running("shutdown")

    async def _serve(self) -> None:
        log.info(
            "worker %s serving queue %s (%d tasks, concurrency %d)",
            self.id,
            self.queue.name,
            len(self.queue.tasks),
            self.concurrency,
            extra={"queue": self.queue.name, "worker": self.id},
        )
        self._started_ms = int(time.time() * 1000)
        await self._heartbeat.beat()
        await run_hooks(self.queue.middleware, "on_worker_start", self)
        watchdog = LoopWatchdog(self._block_threshold_s, self._running_task_names)
        watchdog.start(asyncio.get_running_loop())
        helpers = [
            asyncio.create_task(self._flush_loop(), name="hasten-flush"),
            asyncio.create_task(self._renew_loop(), name="hasten-renew"),
            asyncio.create_task(
                listen_for_aborts(
                    self.queue, lambda: self._closing, lambda job_id: self._drop(job_id, "abort")
                ),
                name="hasten-control",
            ),
        ]
        try:
            await self._fetch_loop()
            await self._drain()
        finally:
            self._closing = True
            watchdog.stop()
            for helper in helpers:
                helper.cancel()
            # redis-py can swallow a cancellation that lands while it connects; the
            # helpers also watch `_closing`, so a bounded wait is enough.
            await asyncio.wait(helpers, timeout=2)
            await self._heartbeat.beat(stopping=True)
            await run_hooks(self.queue.middleware, "on_worker_stop", self)
            log.info("worker %s stopped: %s", self.id, self.stats)

    def _block_threshold_s(self) -> float:
        leases = [c.lease_ms for c in list(self._running.values())]
        return min(leases, default=30_000) / 3000

    def _running_task_names(self) -> list[str]:
        return [c.task_name for c in list(self._running.values()) if c.task is not None]

    async def _drain(self) -> None:
        """Shutdown: let running jobs finish within the grace period, release the rest."""
        while self._waiting:
            self._release_waiting(self._waiting.popleft(), "shutdown")
        tasks = [c.task for c in self._running.values() if c.task is not None]
        if tasks:
            if self.shutdown_grace > 0:
                await asyncio.wait(tasks, timeout=self.shutdown_grace)
            self._cancel_running("shutdown")
            remaining = [c.task for c in self._running.values() if c.task is not None]
            if remaining:
                await asyncio.wait(remaining, timeout=5)
        for attempt in range(20):
            if not self._outcomes:
                return
            try:
                await self._cycle(0)
            except RedisError as exc:
                log.warning("cannot report %d outcomes yet (%s)", len(self._outcomes), exc)
                await asyncio.sleep(min(0.1 * 2**attempt, 2))
        log.error(
            "gave up reporting %d outcomes; their leases will expire and they will rerun", len(self._outcomes)
        )

    def _cancel_running(self, reason: str) -> None:
        for claim in self._running.values():
            claim.cancel(reason)

    # -- fetching -------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        failures = 0
        wait_ms: int | None = None
        """None: claim with a plain cycle next; otherwise block first, at most this long."""
        while not self._stopping.is_set():
            free = self.concurrency + self._prefetch() - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._wait_for_slot()
                continue
            try:
                if wait_ms is None:
                    claimed, wait_ms = await self._cycle(free)
                else:
                    claimed, wait_ms = await self._block(wait_ms, free)
                failures = 0
            except RedisError as exc:
                failures += 1
                delay = min(0.05 * 2**failures, 5.0)
                log.warning("Redis error in worker %s (%s); retrying in %.2fs", self.id, exc, delay)
                await self._sleep(delay)
                wait_ms = None
                continue
            if claimed or wait_ms == 0 or self._stopping.is_set():
                wait_ms = None
                continue
            if self.burst:
                wait_ms = None
                if not self._running:
                    if self._outcomes:
                        continue
                    if 0 <= self._due_ms <= _BURST_HORIZON_MS:
                        await self._sleep(self._due_ms / 1000)  # a retry or delay about to fall due
                        continue
                    return
                # No await between the check and the wait, so no finish can slip past.
                self._slot_freed.clear()
                await self._wait_for_slot()

    async def _wait_for_slot(self) -> None:
        """Wait until a job ends; outcomes that come without a free slot (a held job given
        back) are flushed meanwhile by the flush loop."""
        self._idle = True
        if self._outcomes:
            self._outcome_ready.set()
        try:
            await self._slot_freed.wait()
        finally:
            self._idle = False

    async def _block(self, wait_ms: int, want: int) -> tuple[int, int]:
        """Wait on the wake list until a job arrives or *wait_ms* (-1: no due time) passes,
        then claim; returns (claimed, wait ms) like `_cycle`.

        The claim is sent with the wait, in one pipeline: Redis runs it the moment the wait
        ends, so a woken worker gets its jobs without another round trip. Outcomes are
        flushed meanwhile by the flush loop. Redis checks blocking timeouts only every 1/hz
        seconds (100 ms by default), so when a delayed job or a lease is due sooner than
        the longest block, a local timer pushes the wake marker on time.
        """
        if self._blocking is None:
            self._blocking = make_client(self.queue.settings, blocking=True)
        timeout = _MAX_BLOCK_S if wait_ms < 0 else min(wait_ms / 1000, _MAX_BLOCK_S)
        nudge = None
        if 0 <= wait_ms < _MAX_BLOCK_S * 1000:
            nudge = asyncio.get_running_loop().call_later(timeout, self._nudge)
            timeout += 1.0
        pipe = self._blocking.pipeline(transaction=False)
        pipe.blpop([self.queue.keys.wake, self._own_wake], timeout=timeout)
        SCRIPTS.cycle.queue_in(pipe, self.queue.keys.prefix, self._cycle_args(want, []))
        self._idle = True
        if self._outcomes:
            self._outcome_ready.set()
        self._block_task = asyncio.ensure_future(pipe.execute())
        try:
            async with asyncio.timeout(timeout + self.queue.settings.timeout):
                _, reply = await self._block_task
            return self._apply(reply)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
        except NoScriptError:
            await SCRIPTS.load(self.queue.redis)
        except Exception as exc:
            # A reply that never came means a dead (half-open) connection: start afresh.
            log.warning("blocking wait failed (%r); reconnecting", exc)
            blocking, self._blocking = self._blocking, None
            with contextlib.suppress(Exception):
                await blocking.aclose()
            await self._sleep(0.2)
        finally:
            if nudge is not None:
                nudge.cancel()
            self._idle = False
            self._block_task = None
        return 0, 0

    def _nudge(self) -> None:
        """End this worker's blocking wait now (its own wake list: no other worker wakes)."""

        async def push() -> None:
            with contextlib.suppress(Exception):
                pipe = self.queue.redis.pipeline(transaction=False)
                pipe.rpush(self._own_wake, "1")
                pipe.pexpire(self._own_wake, 60_000)  # unclaimed if the worker is gone
                await pipe.execute()

        self._nudge_task = asyncio.ensure_future(push())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _cycle_args(self, want: int, outcomes: list[Outcome]) -> list[Arg]:
        return [self.id, want, self._policy, pack_rows(outcomes) if outcomes else ""]

    async def _cycle(self, want: int) -> tuple[int, int]:
        """Report taken outcomes and claim up to *want* jobs; returns (claimed, wait ms)."""
        outcomes = list(self._outcomes)
        self._outcomes.clear()
        try:
            async with redis_errors():
                reply = await SCRIPTS.cycle(
                    self.queue.redis, self.queue.keys.prefix, self._cycle_args(want, outcomes)
                )
        except BaseException:
            self._outcomes.extendleft(reversed(outcomes))
            raise
        return self._apply(reply)

    def _apply(self, reply: list[Any]) -> tuple[int, int]:
        """Act on a cycle reply: log fenced and reclaimed jobs, start the claimed ones."""
        now, wait_ms, fenced, reclaimed, flat, self._due_ms = reply
        local_ms = time.time() * 1000
        # How old this reply is, by Redis's clock as this worker last knew it: a process that
        # was frozen (SIGSTOP, a VM pause, a blocked loop) reads replies late.
        age_ms = local_ms + self._offset[0] - now if self._offset_known else 0.0
        self._offset[0] = now - local_ms
        self._offset_known = True
        if fenced:
            self.stats.fenced += len(fenced)
            for job_id in fenced:
                log.warning(
                    "outcome of job %s rejected: this worker's lease was taken over (the job "
                    "ran again elsewhere or already ended)",
                    job_id.decode(),
                    extra={"job_id": job_id.decode(), "worker": self.id},
                )
        if reclaimed:
            self.stats.reclaimed += len(reclaimed)
            log.warning(
                "reclaimed %d jobs whose worker stopped renewing: %s",
                len(reclaimed),
                ", ".join(j.decode() for j in reclaimed),
            )
        for i in range(0, len(flat), 4):
            self._start(flat[i].decode(), flat[i + 1], flat[i + 2], flat[i + 3], now, age_ms)
        return len(flat) // 4, int(wait_ms)

    def _start(self, job_id: str, token: int, attempt: int, body: bytes, now: int, age_ms: float) -> None:
        claim = Claim.from_body(job_id, str(token), int(attempt), body, now)
        if age_ms > claim.lease_ms / 3:
            # Claimed while this process was frozen: its lease may already be another
            # worker's. Give it back rather than run it a second time.
            log.warning(
                "claim of job %s arrived %.0f ms late; giving it back", job_id, age_ms,
                extra={"job_id": job_id, "worker": self.id},
            )  # fmt: skip
            claim.status = "released"
            self.stats.count(claim.status)
            self._outcomes.append((claim.id, claim.token, "l", "", ""))
            self._outcome_ready.set()
            return
        claim.renew_at = time.monotonic() + claim.lease_ms / 3000
        if job_id in self._running:
            # This worker lost the job's lease and has now claimed it afresh.
            self._drop(job_id, "lost")
        self._running[job_id] = claim
        self._lease_added.set()
        self.stats.claimed += 1
        if self._active < self.concurrency:
            self._launch(claim)
        else:
            claim.launched = time.monotonic()  # when it started waiting
            self._waiting.append(claim)
            asyncio.get_running_loop().call_later(_HOLD_S, self._give_back_waiting)

    def _prefetch(self) -> int:
        """Jobs to hold beyond `concurrency`, so a freed slot starts its next job at once.

        Only while jobs are short: a held job waits for a slot here instead of running on
        another worker, which is a bad trade for long jobs; one that waits longer than
        `_HOLD_S` is given back.
        """
        return self.concurrency // 2 if self._typical_run_s < _PREFETCH_BELOW_S else 0

    def _give_back_waiting(self) -> None:
        """Held jobs that found no slot in time go back to the queue for other workers."""
        limit = time.monotonic() - _HOLD_S
        while self._waiting and self._waiting[0].launched <= limit:
            self._release_waiting(self._waiting.popleft(), "shutdown")
            # Slots stay busy this long, so jobs are not short: stop holding any.
            self._typical_run_s = max(self._typical_run_s, _PREFETCH_BELOW_S)

    def _launch(self, claim: Claim) -> None:
        self._active += 1
        claim.launched = time.monotonic()
        claim.task = asyncio.create_task(self._run(claim))

    def _release_waiting(self, claim: Claim, reason: str) -> None:
        """End a claim that never started: give it back, or report it aborted."""
        assert self._runner is not None
        if self._running.get(claim.id) is claim:
            del self._running[claim.id]
        if reason == "lost":
            return
        if reason == "abort":
            outcome = self._runner.aborted_before_start(claim)
        else:
            claim.status = "released"
            outcome = (claim.id, claim.token, "l", "", "")
        self.stats.count(claim.status)
        self._outcomes.append(outcome)
        self._slot_freed.set()
        self._outcome_ready.set()

    async def _run(self, claim: Claim) -> None:
        assert self._runner is not None
        try:
            outcome = await self._runner.run(claim)
        except asyncio.CancelledError:
            # Cancelled with no reason recorded: the worker is going away without a
            # grace period; the job goes back to the queue without using an attempt.
            claim.status = "released"
            outcome = (claim.id, claim.token, "l", "", "")
        self.stats.count(claim.status)
        if claim.stop_reason != "lost":
            self._outcomes.append(outcome)
        if self._running.get(claim.id) is claim:
            del self._running[claim.id]
        self._active -= 1
        self._typical_run_s = 0.9 * self._typical_run_s + 0.1 * (time.monotonic() - claim.launched)
        if self._waiting and not self._stopping.is_set():
            self._launch(self._waiting.popleft())
        self._slot_freed.set()
        self._outcome_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            if not self._idle or not self._outcomes:
                continue
            try:
                await self._cycle(0)
            except RedisError as exc:
                log.warning("cannot report outcomes yet (%s)", exc)
                await asyncio.sleep(0.5)
                self._outcome_ready.set()

    # -- leases and control ---------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "running": len(self._running),
            "started": self._started_ms,
            "seen": int(time.time() * 1000 + self._offset[0]),
            "stats": dataclasses.asdict(self.stats),
        }

    async def _renew_loop(self) -> None:
        """Renew every held lease, in one call, a third of the shortest lease after the last;
        send a heartbeat every few seconds."""
        while not self._closing:
            if self._heartbeat.due:
                await self._heartbeat.beat()
            due = min((c.renew_at for c in self._running.values()), default=None)
            self._lease_added.clear()
            wait = _MAX_BLOCK_S if due is None else due - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._lease_added.wait(), wait)
                continue
            claims = list(self._running.values())
            leases = pack_rows([(c.id, c.token, c.lease_ms) for c in claims])
            args: list[Arg] = [self._policy, leases]
            started = time.monotonic()
            try:
                async with redis_errors():
                    lost, aborting = await SCRIPTS.renew(self.queue.redis, self.queue.keys.prefix, args)
            except RedisError as exc:
                log.warning("cannot renew leases (%s); retrying", exc)
                await self._sleep(0.2)
                continue
            for claim in claims:
                claim.renew_at = started + claim.lease_ms / 3000
            for job_id in lost:
                self._drop(job_id.decode(), "lost")
            for job_id in aborting:
                self._drop(job_id.decode(), "abort")

    def _drop(self, job_id: str, reason: str) -> None:
        claim = self._running.get(job_id)
        if claim is None:
            return
        if claim.task is None:
            self._waiting.remove(claim)
            self._release_waiting(claim, reason)
            return
        if reason == "lost":
            log.warning(
                "lease of job %s was taken over; cancelling this run",
                job_id,
                extra={"job_id": job_id, "worker": self.id},
            )
        claim.cancel(reason)


def _clean_id(worker_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:" else "-" for c in worker_id)[:100]
