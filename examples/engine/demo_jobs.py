"""The tasks of the `make demo-engine` example (the producer is examples/engine/demo.py).

The worker loads this module with ``hasten worker examples.engine.demo_jobs:queue``; the producer
imports it too, to enqueue jobs with the same typed tasks.

Every run uses a fresh queue, ``demo-<random>``, so it never sees another run's jobs. Its
name travels in ``HASTEN_DEMO_QUEUE``: the producer picks it on import, and the worker
process it starts inherits it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

from hasten import INJECTED, Backoff, JobContext, Queue

QUEUE_NAME = os.environ.setdefault("HASTEN_DEMO_QUEUE", f"demo-{secrets.token_hex(4)}")

queue = Queue(QUEUE_NAME)  # Redis from HASTEN_REDIS_URL

log = logging.getLogger("demo.jobs")

# Tasks are named explicitly so producer and worker agree on the names however this module
# is imported (as `demo_jobs` by examples/engine/demo.py, as `examples.engine.demo_jobs` by the
# worker).


@queue.task(name="add")
async def add(a: int, b: int) -> int:
    await asyncio.sleep(0.1)  # stands in for real I/O
    return a + b


@queue.task(name="shout")
def shout(text: str) -> str:
    """A plain (sync) function: the worker runs it in its thread pool."""
    return text.upper() + "!"


@queue.task(name="charge", retries=2, backoff=Backoff(base=0.2, jitter=0))
async def charge(order_id: int, ctx: JobContext[None] = INJECTED) -> str:
    """Fails on its first attempt, as a flaky payment gateway would; the retry succeeds."""
    if ctx.attempt == 1:
        raise ConnectionError("payment gateway timed out")
    return f"order {order_id} charged on attempt {ctx.attempt}"


@queue.task(name="remind")
async def remind(user: str) -> str:
    return f"reminder sent to {user}"


@queue.task(name="render", timeout=10)
async def render(document: str) -> str:
    log.info("rendering %s", document)
    await asyncio.sleep(0.2)
    return f"{document}.pdf"


@queue.task(name="import_invoice", retries=0)
async def import_invoice(line: str) -> float:
    """Fails for good: with retries=0 the first exception is final."""
    return _parse_amount(line.removeprefix("EUR "))


def _parse_amount(amount: str) -> float:
    return float(amount)
