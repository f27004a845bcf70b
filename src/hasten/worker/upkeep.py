"""A worker's chores that are not about running jobs: waiting for Redis at start, its
heartbeat in the registry, and listening for abort requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from hasten.errors import RedisError, RedisUnavailable
from hasten.health import HEARTBEAT_TTL_S
from hasten.protocol.connection import check_server, redis_errors
from hasten.protocol.scripts import SCRIPTS
from hasten.queue import Queue

__all__ = ["Heartbeat", "listen_for_aborts", "wait_for_redis"]

log = logging.getLogger("hasten.worker")


async def wait_for_redis(queue: Queue, check: bool, stopping: asyncio.Event) -> None:
    """Return once Redis answers: a worker started during an outage waits, it does not exit.

    An unsupported Redis is refused at once (`UnsupportedRedis`); with *check*, the
    server's eviction and persistence settings are checked too.
    """
    delay = 0.1
    while not stopping.is_set():
        try:
            if check:
                await check_server(queue.redis)
            else:
                async with redis_errors():
                    await queue.redis.ping()
            return
        except RedisUnavailable as exc:
            log.warning("waiting for Redis (%s); retrying in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, 5.0)


class Heartbeat:
    """Keeps a worker in its queue's registry (see `hasten.health`)."""

    def __init__(self, queue: Queue, worker_id: str, describe: Callable[[], dict[str, Any]]) -> None:
        self._queue = queue
        self._worker_id = worker_id
        self._describe = describe
        self._last = 0.0

    @property
    def due(self) -> bool:
        return time.monotonic() - self._last > HEARTBEAT_TTL_S / 5

    async def beat(self, *, stopping: bool = False) -> None:
        """Say this worker is alive (or, when *stopping*, that it is gone); never raises."""
        info = self._queue.codec.pack_record(
            {"host": socket.gethostname(), "pid": os.getpid(), **self._describe()}
        )
        ttl_ms = 0 if stopping else int(HEARTBEAT_TTL_S * 1000)
        try:
            async with redis_errors():
                await SCRIPTS.heartbeat(
                    self._queue.redis, self._queue.keys.prefix, [self._worker_id, ttl_ms, info]
                )
            self._last = time.monotonic()
        except RedisError as exc:
            log.warning("cannot record this worker's heartbeat (%s)", exc)


async def listen_for_aborts(queue: Queue, closing: Callable[[], bool], abort: Callable[[str], None]) -> None:
    """Call *abort* with each job id the queue's control channel asks to abort.

    A message missed while the subscription is down is not lost for good: lease renewals
    also report jobs being aborted.
    """
    channel = queue.keys.control.encode()
    while not closing():
        pubsub = queue.redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            while not closing():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message and message.get("type") == "message":
                    command, _, job_id = message["data"].decode().partition(":")
                    if command == "abort":
                        abort(job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("control channel lost (%s); resubscribing", exc)
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
