"""Run one claimed job and turn what happened into an outcome for the finish script."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hasten.context import JobContext
from hasten.dependencies import JobScope, TaskDependencies
from hasten.errors import ArgumentError, DecodeError, Retry, SerializationError, SignatureError
from hasten.job import parse_header
from hasten.middleware import JobOutcome, run_hooks
from hasten.options import DEFAULT_RESULT_TTL
from hasten.progress import Progress
from hasten.settings import Backoff

if TYPE_CHECKING:
    from hasten.queue import Queue
    from hasten.task import Task

__all__ = ["Claim", "Runner"]

log = logging.getLogger("hasten.worker")

Outcome = tuple[str, str, str, bytes | int | str, int | str]
"""(id, token, kind, a, b) as the cycle script takes it: see cycle.lua."""

_UNKNOWN_TASK_BACKOFF = Backoff(base=1.0, factor=2.0, max=60.0, jitter=0.3)


@dataclass(slots=True)
class Claim:
    """A job this worker holds a lease on."""

    id: str
    token: str
    attempt: int
    priority: int
    lease_ms: int
    enqueued_ms: int
    payload: bytes
    started_ms: int
    renew_at: float = 0.0
    """When (monotonic) this worker should renew the lease next."""
    task_name: str = ""
    launched: float = 0.0
    task: asyncio.Task[None] | None = None
    status: str = ""
    """How the run ended: complete, failed, retrying, aborted, expired or released."""
    stop_reason: str | None = None
    """Why the worker cancelled it: "abort", "shutdown", "timeout" or "lost" (lease taken)."""

    @classmethod
    def from_body(cls, job_id: str, token: str, attempt: int, body: bytes, now_ms: int) -> Claim:
        priority, lease_ms, enqueued_ms, payload = parse_header(body)
        return cls(job_id, token, attempt, priority, lease_ms, enqueued_ms, payload, now_ms)

    def cancel(self, reason: str) -> None:
        """Cancel the running job, recording why (the first reason wins)."""
        if self.task is not None and not self.task.done() and self.stop_reason is None:
            self.stop_reason = reason
            self.task.cancel()


class Runner:
    """Executes claims for one worker; never raises, always produces an outcome."""

    def __init__(
        self,
        queue: Queue,
        worker_id: str,
        resources: Any,
        threads: ThreadPoolExecutor,
        unknown_task_grace: float,
        clock_offset_ms: list[float],
        dependencies: Mapping[str, TaskDependencies] | None = None,
    ) -> None:
        self.queue = queue
        self.codec = queue.codec
        self.worker_id = worker_id
        self.resources = resources
        self.threads = threads
        self.unknown_task_grace_ms = unknown_task_grace * 1000
        self._offset = clock_offset_ms
        self.middleware = queue.middleware
        self.dependencies = dependencies or {}
        # Without a signing key, None encodes the same for every job: encode it once.
        self._sealed_none = None if queue.settings.signing_key else queue.codec.seal("", None)

    def redis_now_ms(self) -> int:
        return int(time.time() * 1000 + self._offset[0])

    def _record(self, claim: Claim, status: str, **fields: Any) -> bytes:
        record = {
            "s": status,
            "a": claim.attempt,
            "p": claim.priority,
            "eq": claim.enqueued_ms,
            "st": claim.started_ms,
            "ft": self.redis_now_ms(),
            "w": self.worker_id,
            **fields,
        }
        return self.codec.pack_record(record)

    def _final(self, claim: Claim, ttl: float, status: str, **fields: Any) -> Outcome:
        claim.status = status
        return (claim.id, claim.token, "f", self._record(claim, status, **fields), int(ttl * 1000))

    def _failed(
        self,
        claim: Claim,
        ttl: float,
        reason: str,
        exc: BaseException | str,
        task: str | None = None,
        tb: str = "",
    ) -> Outcome:
        if isinstance(exc, BaseException):
            error_type, message = type(exc).__qualname__, str(exc)
            module = type(exc).__module__
            if module not in ("builtins", "__main__"):
                error_type = f"{module}.{error_type}"
        else:
            error_type, message = reason, exc
        log.warning(
            "job %s failed: %s: %s",
            claim.id,
            error_type,
            message,
            extra={
                "job_id": claim.id,
                "queue": self.queue.name,
                "task": task,
                "attempt": claim.attempt,
                "reason": reason,
            },
        )
        record = self._record(claim, "failed", r=reason, et=error_type, em=message, tb=tb, t=task)
        claim.status = "failed"
        return (claim.id, claim.token, "d", record, int(ttl * 1000))

    def aborted_before_start(self, claim: Claim) -> Outcome:
        return self._final(claim, DEFAULT_RESULT_TTL, "aborted", r="aborted", em="aborted before it started")

    async def run(self, claim: Claim) -> Outcome:
        ttl = DEFAULT_RESULT_TTL
        try:
            enqueued_ms = claim.enqueued_ms
            try:
                envelope = self.codec.open(claim.id, claim.payload)
                name, arguments, overrides = _check_envelope(envelope)
            except SignatureError as exc:
                return self._failed(claim, ttl, "signature_invalid", exc)
            except DecodeError as exc:
                return self._failed(claim, ttl, "decode_error", exc)
            task = self.queue.tasks.get(name)
            claim.task_name = name
            if task is None:
                return self._unknown_task(claim, name, enqueued_ms, ttl)
            ttl = float(overrides.get("ttl", task.options.result_ttl))
            expires_at = _expires_at(overrides, enqueued_ms)
            if expires_at is not None and self.redis_now_ms() > expires_at:
                log.info(
                    "job %s expired before it started",
                    claim.id,
                    extra={"job_id": claim.id, "queue": self.queue.name, "task": name},
                )
                return self._final(claim, ttl, "expired", t=name, r="expired")
            try:
                args, kwargs = task.signature.load_arguments(arguments)
            except (ArgumentError, ValueError) as exc:
                return self._failed(claim, ttl, "validation_error", exc, name)
            return await self._execute(claim, task, args, kwargs, overrides, ttl, enqueued_ms)
        except Exception as exc:
            # A bug in hasten itself must not kill the worker or lose the job.
            log.exception("internal error running job %s", claim.id)
            return self._failed(claim, ttl, "internal_error", exc, tb=traceback.format_exc())

    def _unknown_task(self, claim: Claim, name: str, enqueued_ms: int, ttl: float) -> Outcome:
        waited = self.redis_now_ms() - enqueued_ms
        if waited > self.unknown_task_grace_ms:
            return self._failed(
                claim,
                ttl,
                "unknown_task",
                f"no worker registered task {name!r} within the grace period",
                name,
            )
        delay = _UNKNOWN_TASK_BACKOFF.delay(claim.attempt)
        log.warning(
            "job %s names unknown task %r (a rolling deploy?); retrying in %.1fs",
            claim.id,
            name,
            delay,
            extra={"job_id": claim.id, "task": name},
        )
        # "0": not counted as an attempt.
        claim.status = "retrying"
        return (claim.id, claim.token, "r", int(delay * 1000), "0")

    async def _execute(
        self,
        claim: Claim,
        task: Task[Any, Any],
        args: list[Any],
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
        ttl: float,
        enqueued_ms: int,
    ) -> Outcome:
        ctx: JobContext[Any] | None = None
        param = task.signature.context_param
        dependencies = self.dependencies.get(task.name)
        wants_context = dependencies is not None and dependencies.needs_context
        if param is not None or self.middleware or wants_context:
            ctx = JobContext(
                job_id=claim.id,
                task=task.name,
                queue=self.queue.name,
                attempt=claim.attempt,
                enqueued_ms=enqueued_ms,
                worker_id=self.worker_id,
                resources=self.resources,
            )
            if param is not None:
                kwargs[param] = ctx
        progress = None
        progress_param = task.signature.progress_param
        if progress_param is not None or (dependencies is not None and dependencies.needs_progress):
            progress = Progress(self.queue, claim.id, ttl)
            if progress_param is not None:
                kwargs[progress_param] = progress
        timeout = overrides.get("t", task.options.timeout)
        retries = int(overrides.get("r", task.options.retries))
        if ctx is not None and self.middleware:
            await run_hooks(self.middleware, "before_job", ctx)
        started = time.perf_counter()
        status, result = "complete", None
        error: BaseException | None = None
        outcome: Outcome
        # A timer handle is much cheaper per job than an asyncio.timeout() scope.
        deadline = (
            asyncio.get_running_loop().call_later(timeout, claim.cancel, "timeout") if timeout else None
        )
        try:
            if dependencies is None:
                result = await self._call(task, args, kwargs)
            else:
                scope = JobScope(self.queue, self.resources, ctx, progress, self.threads)
                result = await dependencies.call(scope, lambda found: self._call(task, args, kwargs | found))
            if deadline is not None:
                deadline.cancel()
            if result is None and self._sealed_none is not None:
                record_value = self._sealed_none
            else:
                record_value = self.codec.seal(claim.id, task.signature.dump_result(result))
            outcome = self._final(claim, ttl, "complete", v=record_value, t=task.name)
        except asyncio.CancelledError:
            reason = claim.stop_reason
            if reason is None:
                raise
            if reason == "timeout":
                error = TimeoutError(f"timed out after {timeout}s")
                outcome = self._retry_or_fail(claim, task, error, retries, ttl, None)
                status = claim.status
            elif reason == "abort":
                status = "aborted"
                outcome = self._final(
                    claim, ttl, "aborted", t=task.name, r="aborted", em="aborted while running"
                )
            else:
                status = "released" if reason == "shutdown" else "lost"
                claim.status = "released"
                outcome = (claim.id, claim.token, "l", "", "")
        except Retry as exc:
            status, error = "retrying", exc
            outcome = self._retry_or_fail(claim, task, exc, retries, ttl, exc.delay)
        except SerializationError as exc:
            # The job ran; running it again would not make its result encodable.
            status, error = "failed", exc
            outcome = self._failed(claim, ttl, "result_not_serializable", exc, task.name)
        except Exception as exc:
            error = exc
            outcome = self._retry_or_fail(claim, task, exc, retries, ttl, None)
            status = claim.status
        finally:
            if deadline is not None:
                deadline.cancel()
            if progress is not None:
                await progress.close()
        if ctx is not None and self.middleware:
            duration = time.perf_counter() - started
            await run_hooks(
                self.middleware, "after_job", ctx, JobOutcome(status, duration, result, error), reverse=True
            )
        return outcome

    async def _call(self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
        if task.is_async:
            return await task.fn(*args, **kwargs)
        call = functools.partial(task.fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.threads, call)

    def _retry_or_fail(
        self,
        claim: Claim,
        task: Task[Any, Any],
        exc: BaseException,
        retries: int,
        ttl: float,
        delay: float | None,
    ) -> Outcome:
        tb = "".join(traceback.format_exception(exc))
        final = claim.attempt > retries or isinstance(exc, task.options.no_retry)
        if final:
            reason = "exception" if claim.attempt <= retries or retries == 0 else "retries_exhausted"
            if isinstance(exc, task.options.no_retry):
                reason = "not_retryable"
            return self._failed(claim, ttl, reason, exc, task.name, tb)
        if delay is None:
            delay = task.options.backoff.delay(claim.attempt)
        log.info(
            "job %s attempt %d failed (%s: %s); retrying in %.2fs",
            claim.id,
            claim.attempt,
            type(exc).__name__,
            exc,
            delay,
            extra={"job_id": claim.id, "queue": self.queue.name, "task": task.name, "attempt": claim.attempt},
        )
        claim.status = "retrying"
        return (claim.id, claim.token, "r", int(delay * 1000), "1")


def _check_envelope(envelope: Any) -> tuple[str, Any, dict[str, Any]]:
    if (
        not isinstance(envelope, list)
        or not 2 <= len(envelope) <= 4
        or not isinstance(envelope[0], str)
        or not isinstance(envelope[1], dict)
        or not isinstance(options := envelope[2] if len(envelope) > 2 else None, dict | None)
    ):
        raise DecodeError("payload is not a [task, arguments, options] list")
    return envelope[0], envelope[1], options or {}


def _expires_at(overrides: dict[str, Any], enqueued_ms: int) -> int | None:
    if "xa" in overrides:
        return int(overrides["xa"])
    if "x" in overrides:
        return enqueued_ms + int(overrides["x"])
    return None
