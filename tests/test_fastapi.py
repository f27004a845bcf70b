from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from hasten import INJECTED, ConfigurationError, Progress, Queue, Settings, Worker
from hasten.fastapi import (
    QueueDep,
    get_queue,
    get_resources,
    install_exception_handlers,
    jobs_router,
    lifespan,
)
from tests.redis_server import RedisServer, free_port


class SignupIn(BaseModel):
    user_id: int


def make_app(queue: Queue, events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("app up")
        yield {"greeting": "hello"}
        events.append("app down")

    @queue.task(name="send_welcome")
    async def send_welcome(user_id: int) -> str:
        return f"welcome {user_id}"

    @queue.task(name="explode", retries=0)
    async def explode() -> None:
        raise RuntimeError("kaboom")

    def require_admin(request: Request) -> None:
        if request.headers.get("x-admin") != "yes":
            raise HTTPException(403, "admins only")

    app = FastAPI(lifespan=lifespan(queue, own_lifespan))
    install_exception_handlers(app)

    @app.post("/signup")
    async def signup(body: SignupIn, queue: QueueDep, request: Request) -> dict[str, str]:
        job = await send_welcome.enqueue(body.user_id)
        return {"job_id": job.id, "greeting": request.state.greeting, "queue": queue.name}

    @app.post("/typo")
    async def typo(queue: QueueDep) -> dict[str, str]:
        job = await send_welcome.enqueue("not a number")  # type: ignore[arg-type]
        return {"job_id": job.id}

    @app.post("/explode")
    async def explode_route() -> dict[str, str]:
        return {"job_id": (await explode.enqueue()).id}

    app.include_router(jobs_router(queue), prefix="/jobs", dependencies=[Depends(require_admin)])
    return app


@pytest.fixture
def client(redis_url: str, queue_name: str) -> Iterator[tuple[TestClient, Queue, list[str]]]:
    events: list[str] = []
    queue = Queue(queue_name, redis_url=redis_url)
    with TestClient(make_app(queue, events)) as test_client:
        yield test_client, queue, events
    assert events == ["app up", "app down"]


ADMIN = {"x-admin": "yes"}


def test_lifespan_composes_and_queue_dep_injects(client: tuple[TestClient, Queue, list[str]]) -> None:
    http, queue, events = client
    assert events == ["app up"]
    response = http.post("/signup", json={"user_id": 42})
    assert response.status_code == 200
    body = response.json()
    assert body["greeting"] == "hello"
    assert body["queue"] == queue.name
    info = http.get(f"/jobs/{body['job_id']}", headers=ADMIN)
    assert info.status_code == 200
    assert info.json()["status"] == "queued"
    assert info.json()["task"] == "send_welcome"


def test_jobs_router_results_abort_and_auth(client: tuple[TestClient, Queue, list[str]]) -> None:
    http, queue, _ = client
    job_id = http.post("/signup", json={"user_id": 7}).json()["job_id"]
    assert http.get(f"/jobs/{job_id}").status_code == 403  # behind the app's own auth
    pending = http.get(f"/jobs/{job_id}/result", headers=ADMIN)
    assert pending.status_code == 202 and pending.json()["status"] == "queued"
    failing_id = http.post("/explode").json()["job_id"]
    aborted_id = http.post("/signup", json={"user_id": 8}).json()["job_id"]
    assert http.post(f"/jobs/{aborted_id}/abort", headers=ADMIN).json() == {"aborted": True}
    http.portal.call(Worker(queue, burst=True, handle_signals=False).run)  # type: ignore[union-attr]
    done = http.get(f"/jobs/{job_id}/result", params={"timeout": 5}, headers=ADMIN)
    assert done.json() == {
        "id": job_id,
        "status": "complete",
        "value": "welcome 7",
        "error_type": None,
        "error_message": None,
    }
    failed = http.get(f"/jobs/{failing_id}/result", params={"timeout": 5}, headers=ADMIN).json()
    assert (failed["status"], failed["error_type"], failed["error_message"]) == (
        "failed",
        "RuntimeError",
        "kaboom",
    )
    assert http.get(f"/jobs/{aborted_id}/result", headers=ADMIN).json()["status"] == "aborted"
    assert http.get("/jobs/nope", headers=ADMIN).status_code == 404
    assert http.get("/jobs/nope/result", headers=ADMIN).status_code == 404
    schema = http.get("/openapi.json").json()
    assert "JobResultOut" in schema["components"]["schemas"]


def test_invalid_enqueue_is_422(client: tuple[TestClient, Queue, list[str]]) -> None:
    http, _, _ = client
    response = http.post("/typo")
    assert response.status_code == 422
    assert "user_id" in response.json()["detail"]


def test_redis_down_is_503_not_a_hang(queue_name: str) -> None:
    server = RedisServer()
    queue = Queue(queue_name, settings=Settings(redis_url=server.url, timeout=1, connect_timeout=0.5))
    with TestClient(make_app(queue, [])) as http:
        server.close()  # Redis goes away while the app runs
        response = http.post("/signup", json={"user_id": 1})
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
        assert http.get("/jobs/anything", headers=ADMIN).status_code == 503


def test_queue_dep_can_be_overridden(redis_url: str) -> None:
    app = FastAPI()

    @app.get("/which")
    async def which(queue: QueueDep) -> dict[str, str]:
        return {"queue": queue.name}

    app.dependency_overrides[get_queue] = lambda: Queue("stand-in", redis_url=redis_url)
    with TestClient(app) as http:
        assert http.get("/which").json() == {"queue": "stand-in"}


def test_missing_lifespan_is_a_clear_error() -> None:
    app = FastAPI()

    @app.get("/which")
    async def which(queue: QueueDep) -> dict[str, str]:
        return {"queue": queue.name}

    with TestClient(app, raise_server_exceptions=True) as http, pytest.raises(Exception, match="lifespan"):
        http.get("/which")


def test_unreachable_at_startup_fails_the_app_start(queue_name: str) -> None:
    queue = Queue(queue_name, settings=Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", timeout=1))
    with pytest.raises(Exception, match="unreachable"), TestClient(make_app(queue, [])):
        pass


def test_events_stream_progress_then_the_final_state(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, redis_url=redis_url)
    app = make_app(queue, [])

    @queue.task(name="report")
    async def report(steps: int, progress: Progress = INJECTED) -> str:
        for step in range(1, steps + 1):
            await asyncio.sleep(0.3)  # longer than the coalescing interval: each step is sent
            progress.update(step / steps, f"step {step}")
        return "ready"

    with TestClient(app) as http:
        worker = Worker(queue, handle_signals=False)
        running = http.portal.start_task_soon(worker.run)  # type: ignore[union-attr]
        job_id = http.portal.call(report.enqueue, 3).id  # type: ignore[union-attr]
        with http.stream("GET", f"/jobs/{job_id}/events", headers=ADMIN) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            received = list(response.iter_lines())
        lines = [line for line in received if line.startswith(("event:", "data:"))]
        ids = [int(line.removeprefix("id: ")) for line in received if line.startswith("id:")]
        assert ids == list(range(1, len(lines) // 2 + 1)), "every event has an id, in order"
        # A browser's EventSource reconnects after the stream ends, naming the last id: 204 stops it.
        reconnect = http.get(f"/jobs/{job_id}/events", headers={**ADMIN, "Last-Event-ID": str(ids[-1])})
        assert reconnect.status_code == 204
        http.portal.call(worker.stop)  # type: ignore[union-attr]
        running.result(timeout=30)
    events = [
        (lines[i].removeprefix("event: "), json.loads(lines[i + 1][6:])) for i in range(0, len(lines), 2)
    ]
    assert (
        events[-1][0] == "status" and events[-1][1]["status"] == "complete"
    )  # the stream ended with the job
    messages = [data["message"] for kind, data in events if kind == "progress"]
    assert messages[-1] == "step 3"
    assert len(messages) >= 2


class Engine:
    """Stands in for a DB engine: one per process, made by the shared resources factory."""

    def __init__(self) -> None:
        self.rows: list[str] = []


@asynccontextmanager
async def shared_resources() -> AsyncIterator[dict[str, Engine]]:
    yield {"engine": Engine()}


def get_engine(resources: Annotated[dict[str, Engine], Depends(get_resources)]) -> Engine:
    return resources["engine"]


EngineDep = Annotated[Engine, Depends(get_engine)]


def test_one_resources_factory_serves_the_app_and_its_jobs(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, redis_url=redis_url, lifespan=shared_resources)

    @queue.task(name="record")
    async def record(row: str, engine: EngineDep = INJECTED) -> int:
        engine.rows.append(row)
        return id(engine)

    app = FastAPI(lifespan=lifespan(queue, shared_resources))

    @app.post("/rows/{row}")
    async def add_row(row: str, engine: EngineDep, request: Request) -> dict[str, Any]:
        job = await record.enqueue(row)
        return {"job_id": job.id, "engine": id(engine), "in_state": request.state.engine is engine}

    with TestClient(app) as http:
        worker = Worker(queue, handle_signals=False)
        running = http.portal.start_task_soon(worker.run)  # type: ignore[union-attr]
        body = http.post("/rows/first").json()
        worker_engine = http.portal.call(record.job(body["job_id"]).result, 10)  # type: ignore[union-attr]
        http.portal.call(worker.stop)  # type: ignore[union-attr]
        running.result(timeout=30)
    assert body["in_state"], "a mapping the factory yields is merged into the lifespan state"
    assert worker_engine != body["engine"], "the worker made its own engine with the same factory"


class Address(BaseModel):
    city: str
    zip: str


def test_enqueue_endpoint_validates_the_body_against_the_task(redis_url: str, queue_name: str) -> None:
    queue = Queue(queue_name, redis_url=redis_url)

    @queue.task(name="ship")
    async def ship(order_id: int, address: Address, express: bool = False) -> str:
        """Ship an order."""
        return f"{order_id} to {address.city}{' (express)' if express else ''}"

    @queue.task(name="internal")
    async def internal() -> None: ...

    app = FastAPI(lifespan=lifespan(queue))
    app.include_router(jobs_router(queue, enqueue=[ship]), prefix="/jobs")
    with TestClient(app) as http:
        worker = Worker(queue, handle_signals=False)
        running = http.portal.start_task_soon(worker.run)  # type: ignore[union-attr]
        oslo = {"city": "Oslo", "zip": "0150"}
        good = http.post("/jobs/tasks/ship", json={"order_id": "7", "address": oslo})
        assert good.status_code == 202
        assert good.json()["task"] == "ship"
        followed = http.get(good.headers["location"] + "/result", params={"timeout": 10})
        assert followed.json()["value"] == "7 to Oslo"
        wrong = http.post("/jobs/tasks/ship", json={"order_id": "seven", "address": {"city": "Oslo"}})
        assert wrong.status_code == 422
        problems = {tuple(error["loc"]) for error in wrong.json()["detail"]}
        assert problems == {("body", "order_id"), ("body", "address", "zip")}
        extra = http.post("/jobs/tasks/ship", json={"order_id": 1, "address": oslo, "x": 1})
        assert extra.status_code == 422, "unknown fields are refused, as enqueue() refuses them"
        assert http.post("/jobs/tasks/internal", json={}).status_code in (404, 405), "only listed tasks"
        schema = http.get("/openapi.json").json()
        http.portal.call(worker.stop)  # type: ignore[union-attr]
        running.result(timeout=30)
    operation = schema["paths"]["/jobs/tasks/ship"]["post"]
    assert operation["description"] == "Ship an order."
    body_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert set(schema["components"]["schemas"][body_ref]["required"]) == {"order_id", "address"}


class Opaque:
    pass


def test_enqueue_endpoint_refuses_a_task_without_a_json_schema(queue_name: str) -> None:
    queue = Queue(queue_name)

    @queue.task(name="opaque")
    async def opaque(thing: Opaque) -> None: ...

    with pytest.raises(ConfigurationError, match="opaque cannot be enqueued over HTTP"):
        jobs_router(queue, enqueue=True)


def test_every_jobs_route_is_typed_in_openapi(queue_name: str) -> None:
    queue = Queue(queue_name)

    @queue.task(name="ping")
    async def ping(n: int) -> int:
        return n

    app = FastAPI()
    app.include_router(jobs_router(queue, enqueue=True), prefix="/jobs")
    schema = app.openapi()
    answers = {
        (path, method): next(iter(op["responses"][code]["content"].items()))
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
        for code in op["responses"]
        if code in ("200", "202")
    }
    assert {kind for kind, _ in answers.values()} == {"application/json", "text/event-stream"}
    refs = {key: body.get("schema", {}).get("$ref", "") for key, (_, body) in answers.items()}
    refs = {key: ref.rsplit("/", 1)[-1] for key, ref in refs.items()}
    assert refs == {
        ("/jobs/tasks/ping", "post"): "EnqueuedOut",
        ("/jobs/{job_id}", "get"): "JobInfo",
        ("/jobs/{job_id}/result", "get"): "JobResultOut",
        ("/jobs/{job_id}/events", "get"): "",
        ("/jobs/{job_id}/abort", "post"): "AbortOut",
    }
