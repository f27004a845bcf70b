"""Which workers serve a queue: the registry their heartbeats keep, read by `hasten check`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hasten.job import ms_to_datetime
from hasten.protocol.connection import redis_errors

if TYPE_CHECKING:
    from hasten.queue import Queue

__all__ = ["HEARTBEAT_TTL_S", "WorkerInfo", "live_workers"]

HEARTBEAT_TTL_S = 15.0
"""A worker that has not been heard from for this long counts as gone."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live worker, as its last heartbeat described it."""

    id: str
    host: str
    pid: int
    concurrency: int
    running: int
    started_at: datetime | None
    last_seen: datetime | None
    stats: dict[str, int]


async def live_workers(queue: Queue) -> list[WorkerInfo]:
    """Workers whose heartbeat has not run out, by Redis's clock."""
    async with redis_errors():
        seconds, micros = await queue.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        found: list[Any] = await queue.redis.zrange(queue.keys.workers, now_ms, "+inf", byscore=True)
        ids = [bytes(i) for i in found]
        keys = [queue.keys.worker(i.decode()) for i in ids]
        records: list[Any] = await queue.redis.mget(keys) if keys else []
    workers = []
    for worker_id, data in zip(ids, records, strict=True):
        if data is None:
            continue
        info: dict[str, Any] = queue.codec.unpack_record(data)
        workers.append(
            WorkerInfo(
                id=worker_id.decode(),
                host=str(info.get("host", "")),
                pid=int(info.get("pid", 0)),
                concurrency=int(info.get("concurrency", 0)),
                running=int(info.get("running", 0)),
                started_at=ms_to_datetime(info.get("started")),
                last_seen=ms_to_datetime(info.get("seen")),
                stats=dict(info.get("stats", {})),
            )
        )
    return workers
