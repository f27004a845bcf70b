"""FastAPI integration: the queue in the app's lifespan, a `QueueDep`, and a jobs router.

```python
from fastapi import Depends, FastAPI
from hasten.fastapi import QueueDep, install_exception_handlers, jobs_router, lifespan

app = FastAPI(lifespan=lifespan(queue, my_own_lifespan))   # connects the queue at start-up
install_exception_handlers(app)                            # Redis down -> 503, bad call -> 422

@app.post("/signup")
async def signup(body: SignupIn, queue: QueueDep) -> dict[str, str]:
    job = await send_welcome.enqueue(body.user_id)
    return {"job_id": job.id}

app.include_router(jobs_router(queue), prefix="/jobs", dependencies=[Depends(require_admin)])
```
Needs ``pip install 'hasten[fastapi]'``; ``import hasten`` never imports this module.
"""

# No `from __future__ import annotations`: FastAPI reads these route annotations at runtime.
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python

from hasten.errors import (
    ArgumentError,
    ConfigurationError,
    JobAborted,
    JobExpired,
    JobFailed,
    JobNotFound,
    QueueFull,
    RedisUnavailable,
    ResultTimeout,
)
from hasten.job import JobInfo, JobStatus
from hasten.progress import ProgressInfo, progress_from_record, read_progress
from hasten.queue import Queue

__all__ = [
    "JobResultOut",
    "ProgressOut",
    "QueueDep",
    "get_queue",
    "install_exception_handlers",
    "jobs_router",
    "lifespan",
]

STATE_KEY = "hasten_queue"
_KEEPALIVE_S = 15.0
T = TypeVar("T")

AppLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def lifespan(queue: Queue, app_lifespan: AppLifespan | None = None) -> AppLifespan:
    """A FastAPI lifespan that connects *queue* around the app's own lifespan (if any).

    The queue lands in the lifespan state, where `get_queue` finds it: no globals.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with queue:
            if app_lifespan is None:
                yield {STATE_KEY: queue}
                return
            async with app_lifespan(app) as state:
                yield {**(state or {}), STATE_KEY: queue}

    return run


async def get_queue(request: Request) -> Queue:
    """The queue of the app's lifespan; override it with ``app.dependency_overrides``."""
    queue = getattr(request.state, STATE_KEY, None)
    if not isinstance(queue, Queue):
        raise ConfigurationError(
            "no hasten queue in the app's lifespan state: create the app with "
            "FastAPI(lifespan=hasten.fastapi.lifespan(queue))"
        )
    return queue


QueueDep = Annotated[Queue, Depends(get_queue)]
"""Inject the app's queue: ``async def endpoint(queue: QueueDep)``."""


def install_exception_handlers(app: FastAPI) -> None:
    """Answer 503 when Redis is unreachable or full, 422 when an enqueue call is invalid."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"job queue unavailable: {exc}"}, status_code=503)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.add_exception_handler(RedisUnavailable, unavailable)
    app.add_exception_handler(QueueFull, unavailable)
    app.add_exception_handler(ArgumentError, invalid)


class JobResultOut(BaseModel):
    """A job's outcome: ``value`` when complete, ``error_*`` when failed."""

    id: str
    status: JobStatus
    value: Any = None
    error_type: str | None = None
    error_message: str | None = None


class ProgressOut(BaseModel):
    """A job's reported progress, as the events stream sends it."""

    fraction: float | None = None
    message: str | None = None
    data: dict[str, Any] | None = None

    @classmethod
    def of(cls, info: ProgressInfo) -> "ProgressOut":
        return cls(fraction=info.fraction, message=info.message, data=info.data)


def jobs_router(queue: Queue | None = None) -> APIRouter:
    """Routes to read and abort jobs by id: ``GET /{id}``, ``GET /{id}/result``,
    ``GET /{id}/events`` (Server-Sent Events), ``POST /{id}/abort``. Mount it behind your
    own auth dependencies.

    Without *queue* the routes use the app's (`QueueDep`).
    """
    router = APIRouter(tags=["jobs"])

    async def the_queue(request: Request) -> Queue:
        return queue if queue is not None else await get_queue(request)

    Q = Annotated[Queue, Depends(the_queue)]

    @router.get("/{job_id}", response_model=JobInfo, summary="A job's status and details")
    async def job_info(job_id: str, q: Q) -> JobInfo:
        info = await _guard(q.job(job_id).info())
        if info.status is JobStatus.NOT_FOUND:
            raise HTTPException(404, f"no job {job_id}")
        return info

    @router.get(
        "/{job_id}/result",
        response_model=JobResultOut,
        summary="Wait up to `timeout` seconds for a job's outcome",
        responses={202: {"model": JobResultOut, "description": "not finished yet"}},
    )
    async def job_result(
        job_id: str, q: Q, timeout: Annotated[float, Query(ge=0, le=60)] = 0
    ) -> JobResultOut | JSONResponse:
        job = q.job(job_id)
        try:
            value = await _guard(job.result(timeout=timeout))
        except JobNotFound as exc:
            raise HTTPException(404, f"no job {job_id}") from exc
        except ResultTimeout:
            status = await _guard(job.status())
            body = JobResultOut(id=job_id, status=status)
            return JSONResponse(body.model_dump(mode="json"), status_code=202)
        except JobFailed as exc:
            return JobResultOut(
                id=job_id, status=JobStatus.FAILED, error_type=exc.error_type, error_message=exc.error_message
            )
        except JobAborted:
            return JobResultOut(id=job_id, status=JobStatus.ABORTED)
        except JobExpired:
            return JobResultOut(id=job_id, status=JobStatus.EXPIRED)
        return JobResultOut(id=job_id, status=JobStatus.COMPLETE, value=to_jsonable_python(value))

    @router.get(
        "/{job_id}/events",
        summary="Server-Sent Events: the job's progress, then its final state",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def job_events(job_id: str, q: Q) -> StreamingResponse:
        info = await _guard(q.job(job_id).info())
        if info.status is JobStatus.NOT_FOUND:
            raise HTTPException(404, f"no job {job_id}")
        return StreamingResponse(_events(q, job_id), media_type="text/event-stream")

    @router.post("/{job_id}/abort", summary="Abort a waiting or running job")
    async def abort_job(job_id: str, q: Q) -> dict[str, bool]:
        return {"aborted": await _guard(q.job(job_id).abort())}

    return router


_JOB_INFO = TypeAdapter(JobInfo)


def _sse(event: str, data: bytes | str) -> str:
    text = data.decode() if isinstance(data, bytes) else data
    return f"event: {event}\ndata: {text}\n\n"


async def _events(queue: Queue, job_id: str) -> AsyncIterator[str]:
    """Progress and status events until the job ends; subscribe first, then read, so
    nothing published in between is missed. Comments keep idle proxies from closing it."""
    progress_channel, done_channel = queue.keys.progress(job_id), queue.keys.done_channel(job_id)
    pubsub = queue.redis.pubsub()
    try:
        await pubsub.subscribe(progress_channel, done_channel)
        if (progress := await read_progress(queue, job_id)) is not None:
            yield _sse("progress", ProgressOut.of(progress).model_dump_json())
        info = await queue.job(job_id).info()
        yield _sse("status", _JOB_INFO.dump_json(info))
        while not info.status.is_final and info.status is not JobStatus.NOT_FOUND:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_KEEPALIVE_S)
            if message is None:
                yield ": keep-alive\n\n"
            elif message["channel"].decode() == progress_channel:
                reported = progress_from_record(queue.codec.unpack_record(message["data"]))
                yield _sse("progress", ProgressOut.of(reported).model_dump_json())
            else:
                info = await queue.job(job_id).info()
                yield _sse("status", _JOB_INFO.dump_json(info))
    finally:
        await pubsub.aclose()


async def _guard(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except RedisUnavailable as exc:
        raise HTTPException(503, f"job queue unavailable: {exc}") from exc
