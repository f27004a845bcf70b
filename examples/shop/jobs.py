"""The shop's queue and its tasks; the worker runs them::

    python -m hasten worker examples.shop.jobs:queue --concurrency 10

Tasks get a database session through the same dependency as the routes (`SessionDep`);
the worker resolves it for each job and closes it when the job ends, failed or not.
``SHOP_QUEUE`` names the queue (``shop`` by default), so a demo or a test can use its own.
"""

import asyncio
import logging
import os
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from examples.shop.db import Outbox, Report, Resources, SessionDep, User, resources
from hasten import INJECTED, Backoff, JobContext, Progress, Queue

queue = Queue(os.environ.get("SHOP_QUEUE", "shop"), lifespan=resources)

log = logging.getLogger("shop.jobs")

REPORT_STEPS = 8
REPORT_STEP_S = 0.25
"""A report scans its data in 8 batches of a quarter second: about two seconds in all."""


class UnknownUser(LookupError):
    """Raised when a job names a user that is not in the database."""


class PaymentDeclined(Exception):
    """Raised when the card processor declines a charge (this example's declines them all)."""


class ReportOut(BaseModel):
    """A report as the API shows it, and as `build_report` returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    users: int | None
    emails_sent: int | None
    finished_at: datetime | None


# Tasks are named explicitly: the names are the contract between the app and the worker.


@queue.task(name="send_welcome", no_retry=(UnknownUser,))
async def send_welcome(user_id: int, db: SessionDep = INJECTED) -> int:
    """Write a welcome email to the outbox; returns the outbox row's id."""
    user = await db.get(User, user_id)
    if user is None:
        raise UnknownUser(f"no user {user_id}")
    email = Outbox(
        recipient=user.email,
        subject="Welcome to the shop!",
        body=f"Hello {user.email.partition('@')[0]}, thanks for signing up.",
    )
    db.add(email)
    await db.commit()
    log.info("welcome email %d written for %s", email.id, user.email)
    return email.id


@queue.task(name="build_report", timeout=60)
async def build_report(report_id: int, db: SessionDep = INJECTED, progress: Progress = INJECTED) -> ReportOut:
    """Count signups and welcome emails, batch by batch, reporting progress as it goes."""
    report = await db.get(Report, report_id)
    if report is None:
        raise LookupError(f"no report {report_id}")
    report.status = "running"
    await db.commit()
    users = await db.scalar(select(func.count()).select_from(User)) or 0
    for step in range(1, REPORT_STEPS + 1):
        await asyncio.sleep(REPORT_STEP_S)  # stands in for a slow query over one batch
        progress.update(step / REPORT_STEPS, f"batch {step} of {REPORT_STEPS}", {"batches_done": step})
    report.users = users
    report.emails_sent = await db.scalar(select(func.count()).select_from(Outbox)) or 0
    report.status = "ready"
    report.finished_at = datetime.now(UTC)
    await db.commit()
    return ReportOut.model_validate(report)


@queue.task(name="charge_card", retries=2, backoff=Backoff(base=0.2, factor=2, max=1, jitter=0.1))
async def charge_card(order_id: int, ctx: JobContext[Resources] = INJECTED) -> str:
    """Always declined: two retries, then the job fails for good and is dead-lettered."""
    log.info("charging order %d, attempt %d", order_id, ctx.attempt)
    raise PaymentDeclined(f"card declined for order {order_id}: insufficient funds")
