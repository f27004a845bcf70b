"""FastAPI integration: the queue in the app's lifespan, `QueueDep`, shared resources
for routes and jobs, and a jobs router.

```python
from fastapi import Depends, FastAPI
from hasten.fastapi import QueueDep, get_resources, install_exception_handlers, jobs_router, lifespan

queue = Queue("app", lifespan=resources)                   # workers run `resources` once each
app = FastAPI(lifespan=lifespan(queue, resources))         # so does the app; the queue connects
install_exception_handlers(app)                            # Redis down -> 503, bad call -> 422

async def get_db(res: Annotated[Resources, Depends(get_resources)]) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(res.engine) as session:         # one dependency for routes and jobs
        yield session

@queue.task()
async def send_welcome(user_id: int, db: Annotated[AsyncSession, Depends(get_db)] = INJECTED) -> None: ...

@app.post("/signup")
async def signup(body: SignupIn, queue: QueueDep) -> dict[str, str]:
    job = await send_welcome.enqueue(body.user_id)
    return {"job_id": job.id}

app.include_router(jobs_router(queue), prefix="/jobs", dependencies=[Depends(require_admin)])
```
Needs ``pip install 'hasten[fastapi]'``; ``import hasten`` never imports this module.
"""

# No `from __future__ import annotations`: FastAPI reads these route annotations at runtime.
import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python
from starlette.routing import NoMatchFound

from hasten.dependencies import provide_in_worker
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
from hasten.task import Task

__all__ = [
    "AbortOut",
    "EnqueuedOut",
    "JobResultOut",
    "ProgressOut",
    "QueueDep",
    "ResourcesDep",
    "get_queue",
    "get_resources",
    "install_exception_handlers",
    "jobs_router",
    "lifespan",
]

STATE_KEY = "hasten_queue"
RESOURCES_KEY = "hasten_resources"
_KEEPALIVE_S = 15.0
T = TypeVar("T")

AppLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]
SharedResources = Callable[[], AbstractAsyncContextManager[Any]]


def lifespan(queue: Queue, app_lifespan: AppLifespan | SharedResources | None = None) -> AppLifespan:
    """A FastAPI lifespan that connects *queue* around the app's own lifespan (if any).

    *app_lifespan* is either the app's lifespan (it takes the app) or a factory that takes
    nothing, the same one the workers get as ``Queue(lifespan=...)``: then the app and its
    jobs share one definition of their resources. What it yields is what `get_resources`
    returns; a mapping is also merged into the lifespan state. The queue lands in the
    lifespan state too, where `get_queue` finds it: no globals.
    """

    takes_app = app_lifespan is not None and bool(inspect.signature(app_lifespan).parameters)

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with queue:
            if app_lifespan is None:
                yield {STATE_KEY: queue}
                return
            manager = app_lifespan(app) if takes_app else app_lifespan()  # type: ignore[call-arg]
            async with manager as resources:
                state = dict(resources) if isinstance(resources, Mapping) else {}
                yield {**state, RESOURCES_KEY: resources, STATE_KEY: queue}

    return run


async def get_queue(request: Request) -> Queue:
    """The queue of the app's lifespan; override it with ``app.dependency_overrides``.

    In a job, the queue the job came from.
    """
    queue = getattr(request.state, STATE_KEY, None)
    if not isinstance(queue, Queue):
        raise ConfigurationError(
            "no hasten queue in the app's lifespan state: create the app with "
            "FastAPI(lifespan=hasten.fastapi.lifespan(queue))"
        )
    return queue


async def get_resources(request: Request) -> Any:
    """What the app's lifespan yielded; in a job, what the worker lifespan yielded.

    The way for one dependency to serve both requests and jobs:

    ```python
    async def get_session(res: Annotated[Resources, Depends(get_resources)]) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(res.engine) as session:
            yield session
    ```
    """
    missing = object()
    resources = getattr(request.state, RESOURCES_KEY, missing)
    if resources is missing:
        raise ConfigurationError(
            "no resources in the app's lifespan state: create the app with "
            "FastAPI(lifespan=hasten.fastapi.lifespan(queue, resources))"
        )
    return resources


provide_in_worker(get_queue, lambda scope: scope.queue)
provide_in_worker(get_resources, lambda scope: scope.resources)

QueueDep = Annotated[Queue, Depends(get_queue)]
"""Inject the app's queue: ``async def endpoint(queue: QueueDep)``."""

ResourcesDep = Annotated[Any, Depends(get_resources)]
"""Inject the lifespan's resources, untyped; ``Annotated[Res, Depends(get_resources)]`` types them."""


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


def jobs_router(queue: Queue | None = None, *, enqueue: bool | Iterable[Task[Any, Any]] = False) -> APIRouter:
    """Routes to read and abort jobs by id: ``GET /{id}``, ``GET /{id}/result``,
    ``GET /{id}/events`` (Server-Sent Events), ``POST /{id}/abort``. Mount it behind your
    own auth dependencies.

    Without *queue* the routes use the app's (`QueueDep`). *enqueue* adds
    ``POST /tasks/{task name}`` for the given tasks (``True``: every task of *queue*
    registered so far), its JSON body validated against the task's parameters.
    """
    router = APIRouter(tags=["jobs"])
    exposed: Iterable[Task[Any, Any]] = ()
    if enqueue is True:
        if queue is None:
            raise ConfigurationError("jobs_router(enqueue=True) needs the queue whose tasks it exposes")
        exposed = list(queue.tasks.values())
    elif enqueue is not False:
        exposed = enqueue
    for task in exposed:
        _add_enqueue_route(router, task)

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
        responses={
            200: {"content": {"text/event-stream": {}}},
            204: {"description": "the job has ended (a reconnect: the request names a Last-Event-ID)"},
        },
    )
    async def job_events(
        job_id: str,
        q: Q,
        last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        info = await _guard(q.job(job_id).info())
        if info.status is JobStatus.NOT_FOUND:
            raise HTTPException(404, f"no job {job_id}")
        if last_event_id is not None and info.status.is_final:
            # A browser's EventSource reconnects when a stream ends; 204 tells it the job
            # is over, where a new stream would replay the final state every few seconds.
            return Response(status_code=204)
        return StreamingResponse(_events(q, job_id), media_type="text/event-stream")

    @router.post("/{job_id}/abort", summary="Abort a waiting or running job")
    async def abort_job(job_id: str, q: Q) -> AbortOut:
        return AbortOut(aborted=await _guard(q.job(job_id).abort()))

    return router


class AbortOut(BaseModel):
    """Whether the abort reached the job: false when it had already ended or never existed."""

    aborted: bool


class EnqueuedOut(BaseModel):
    """A job just enqueued; follow it at the ``Location`` the response gives."""

    id: str
    task: str


def _add_enqueue_route(router: APIRouter, task: Task[Any, Any]) -> None:
    body_type = task.signature.arguments_type
    try:
        TypeAdapter(body_type).json_schema()
    except Exception as exc:
        raise ConfigurationError(
            f"task {task.name} cannot be enqueued over HTTP: its parameters have no JSON schema ({exc})"
        ) from exc

    async def enqueue_job(request: Request, response: Response, arguments: Any) -> EnqueuedOut:
        (job,) = await _guard(task.enqueue_many([task.prepare_from(arguments)]))
        with contextlib.suppress(NoMatchFound):
            response.headers["Location"] = str(request.url_for("job_info", job_id=job.id))
        return EnqueuedOut(id=job.id, task=task.name)

    # The body's type is the task's, known only now: FastAPI reads it from the signature.
    parameters = list(inspect.signature(enqueue_job).parameters.values())
    parameters[-1] = parameters[-1].replace(annotation=Annotated[body_type, Body()])
    enqueue_job.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=EnqueuedOut
    )
    router.add_api_route(
        f"/tasks/{task.name}",
        enqueue_job,
        methods=["POST"],
        status_code=202,
        response_model=EnqueuedOut,
        summary=f"Enqueue {task.name}",
        name=f"enqueue_{task.name}",
        description=inspect.getdoc(task.fn) or "",
    )


_JOB_INFO = TypeAdapter(JobInfo)


def _sse(event: str, data: bytes | str, sequence: int) -> str:
    text = data.decode() if isinstance(data, bytes) else data
    return f"id: {sequence}\nevent: {event}\ndata: {text}\n\n"


async def _events(queue: Queue, job_id: str) -> AsyncIterator[str]:
    """Progress and status events until the job ends; subscribe first, then read, so
    nothing published in between is missed. Comments keep idle proxies from closing it."""
    sequence = itertools.count(1)
    progress_channel, done_channel = queue.keys.progress(job_id), queue.keys.done_channel(job_id)
    pubsub = queue.redis.pubsub()
    try:
        await pubsub.subscribe(progress_channel, done_channel)
        if (progress := await read_progress(queue, job_id)) is not None:
            yield _sse("progress", ProgressOut.of(progress).model_dump_json(), next(sequence))
        info = await queue.job(job_id).info()
        yield _sse("status", _JOB_INFO.dump_json(info), next(sequence))
        while not info.status.is_final and info.status is not JobStatus.NOT_FOUND:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_KEEPALIVE_S)
            if message is None:
                yield ": keep-alive\n\n"
            elif message["channel"].decode() == progress_channel:
                reported = progress_from_record(queue.codec.unpack_record(message["data"]))
                yield _sse("progress", ProgressOut.of(reported).model_dump_json(), next(sequence))
            else:
                info = await queue.job(job_id).info()
                yield _sse("status", _JOB_INFO.dump_json(info), next(sequence))
    finally:
        await pubsub.aclose()


async def _guard(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except RedisUnavailable as exc:
        raise HTTPException(503, f"job queue unavailable: {exc}") from exc
