"""Wait for job results over pub/sub: subscribe first, then read, so no wake-up is missed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hasten.protocol.connection import redis_errors
from hasten.protocol.keys import Keys

__all__ = ["ResultWaiter"]

log = logging.getLogger("hasten.results")


class ResultWaiter:
    """One pub/sub connection per queue, shared by every `Job.result()` call in the process."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiters: dict[bytes, list[asyncio.Future[Any]]] = {}
        self._lock = asyncio.Lock()

    async def wait(self, job_id: str, timeout: float | None) -> bytes | None:
        """The job's result record, or None when *timeout* passes first."""
        channel = self._keys.done_channel(job_id).encode()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, [])
        waiters.append(future)
        try:
            if len(waiters) == 1:
                await self._subscribe(channel)
            async with redis_errors():
                record: Any = await self._redis.get(self._keys.result(job_id))
            if record is not None:
                return bytes(record)
            try:
                return bytes(await asyncio.wait_for(asyncio.shield(future), timeout))
            except TimeoutError:
                return None
        finally:
            waiters.remove(future)
            if not waiters:
                del self._waiters[channel]
                await self._unsubscribe(channel)

    async def _subscribe(self, channel: bytes) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub()
            async with redis_errors():
                await self._pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(self._pubsub))

    async def _unsubscribe(self, channel: bytes) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        while self._waiters:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("result subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(0.2)
                await self._recheck()
                continue
            if message is None or message.get("type") != "message":
                continue
            for future in self._waiters.get(message["channel"], ()):
                if not future.done():
                    future.set_result(message["data"])

    async def _recheck(self) -> None:
        # A result published while the subscription was down would be missed: read them.
        done = self._keys.prefix.encode() + b"done:"
        for channel, futures in list(self._waiters.items()):
            job_id = channel[len(done) :].decode()
            with contextlib.suppress(Exception):
                record = await self._redis.get(self._keys.result(job_id))
                if record is not None:
                    for future in futures:
                        if not future.done():
                            future.set_result(record)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = None
        self._reader = None
