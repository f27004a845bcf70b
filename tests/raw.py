"""Drive hasten's scripts directly, as a crashed worker or a hostile producer would."""

from __future__ import annotations

from typing import Any

from hasten import Queue
from hasten.protocol.scripts import SCRIPTS, pack_rows


def policy(max_stalls: int = 3) -> str:
    """max stalls, result TTL ms, dead-letter size and age limits, as workers send them."""
    return f"{max_stalls},60000,1000,86400000"


async def write_raw_job(queue: Queue, job_id: str, payload: bytes, lease_ms: int = 30000) -> None:
    """Store a job whose payload bypassed the producer's encoding and validation."""
    await SCRIPTS.enqueue(queue.redis, queue.keys.prefix, [pack_rows([[job_id, payload, 0, "", lease_ms]])])


async def claim_as(queue: Queue, worker_id: str, want: int = 1, max_stalls: int = 3) -> Any:
    """Claim jobs as *worker_id*, which then never renews them (it "died")."""
    return await SCRIPTS.cycle(queue.redis, queue.keys.prefix, [worker_id, want, policy(max_stalls), ""])


async def report_as(queue: Queue, worker_id: str, outcomes: list[list[Any]]) -> Any:
    rows = pack_rows(outcomes)
    return await SCRIPTS.cycle(queue.redis, queue.keys.prefix, [worker_id, 0, policy(), rows])


async def renew_as(queue: Queue, leases: list[list[Any]]) -> Any:
    return await SCRIPTS.renew(queue.redis, queue.keys.prefix, [policy(), pack_rows(leases)])
