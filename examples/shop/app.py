"""The shop's web app::

    uvicorn examples.shop.app:app

Routes enqueue jobs and answer at once; hasten's jobs router under ``/jobs`` lets a client
follow them: ``GET /jobs/{id}/result?timeout=5``, ``GET /jobs/{id}/events`` (live progress
as Server-Sent Events), and ``POST /jobs/tasks/send_welcome`` to enqueue a task directly.
"""

from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from examples.shop.db import Outbox, Report, SessionDep, User, get_engine, resources
from examples.shop.jobs import ReportOut, build_report, charge_card, queue, send_welcome
from hasten.fastapi import QueueDep, install_exception_handlers, jobs_router, lifespan

app = FastAPI(title="hasten shop", lifespan=lifespan(queue, resources))
install_exception_handlers(app)  # Redis down -> 503, an invalid enqueue -> 422
app.include_router(jobs_router(queue, enqueue=[send_welcome]), prefix="/jobs")


class SignupIn(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)


class SignupOut(BaseModel):
    user_id: int
    job_id: str
    """The welcome email's job: follow it under ``/jobs/{job_id}``."""


class OutboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    recipient: str
    subject: str
    body: str
    created_at: datetime


class ReportStarted(BaseModel):
    report_id: int
    job_id: str
    """Follow it live at ``/jobs/{job_id}/events``."""


class ChargeStarted(BaseModel):
    order_id: int
    job_id: str


class DeadLetterOut(BaseModel):
    id: str
    task: str | None
    reason: str
    error_type: str | None
    error_message: str | None
    attempts: int


class HealthOut(BaseModel):
    database: str
    queue: str
    workers: int
    """Live workers serving the queue: the app works without one, but jobs wait."""


@app.get("/health")
async def health(queue: QueueDep, engine: Annotated[AsyncEngine, Depends(get_engine)]) -> HealthOut:
    return HealthOut(database=engine.dialect.name, queue=queue.name, workers=len(await queue.workers()))


@app.post("/signup", status_code=201)
async def signup(body: SignupIn, db: SessionDep) -> SignupOut:
    """Create a user and enqueue their welcome email."""
    user = User(email=body.email)
    db.add(user)
    try:
        await db.commit()  # before the enqueue: the job must find the user
    except IntegrityError as exc:
        raise HTTPException(409, f"{body.email} has signed up already") from exc
    job = await send_welcome.enqueue(user.id)
    return SignupOut(user_id=user.id, job_id=job.id)


@app.get("/outbox")
async def outbox(db: SessionDep) -> list[OutboxOut]:
    """The emails the shop has sent, oldest first."""
    emails = await db.scalars(select(Outbox).order_by(Outbox.id))
    return [OutboxOut.model_validate(email) for email in emails]


@app.post("/reports", status_code=202)
async def start_report(db: SessionDep) -> ReportStarted:
    """Start a signups report; ``GET /jobs/{job_id}/events`` streams its progress."""
    report = Report()
    db.add(report)
    await db.commit()
    job = await build_report.enqueue(report.id)
    return ReportStarted(report_id=report.id, job_id=job.id)


@app.get("/reports/{report_id}")
async def get_report(report_id: int, db: SessionDep) -> ReportOut:
    report = await db.get(Report, report_id)
    if report is None:
        raise HTTPException(404, f"no report {report_id}")
    return ReportOut.model_validate(report)


@app.post("/orders/{order_id}/charge", status_code=202)
async def charge(order_id: int) -> ChargeStarted:
    """Charge an order's card in the background (this example's card is always declined)."""
    job = await charge_card.enqueue(order_id)
    return ChargeStarted(order_id=order_id, job_id=job.id)


@app.get("/dead-letters")
async def dead_letters(queue: QueueDep, limit: int = 20) -> list[DeadLetterOut]:
    """Jobs that failed for good, newest first."""
    letters = await queue.dead_letters.list(limit=limit)
    return [
        DeadLetterOut(
            id=letter.id,
            task=letter.task,
            reason=letter.reason,
            error_type=letter.error_type,
            error_message=letter.error_message,
            attempts=letter.attempts,
        )
        for letter in letters
    ]
