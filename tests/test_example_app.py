"""The example app of `make demo` (examples/shop/), run as a user runs it: uvicorn serving
the app and a ``hasten worker`` process beside it, on SQLite and on PostgreSQL, over HTTP.

PostgreSQL is the one at 127.0.0.1:5432 (user postgres, trust auth): each run creates a
database of its own there and drops it after. Without that server these tests skip,
except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx2 as httpx
import pytest

from examples.demo import sse_events
from examples.shop.db import database_url
from examples.shop.jobs import PaymentDeclined, charge_card
from tests.conftest import ROOT, hasten_process
from tests.redis_server import RedisServer, free_port

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
TARGET = "examples.shop.jobs:queue"
STARTUP_TIMEOUT = 30.0
DECLINED = f"{PaymentDeclined.__module__}.{PaymentDeclined.__qualname__}"
"""How a failed job names an exception class of the app's: by its full path."""

pytestmark = pytest.mark.slow


def run_on_postgres(sql: str) -> None:
    """Run one statement on the ``test`` database, on a loop of its own (in a thread, away
    from the tests' loop)."""

    async def run() -> None:
        connection = await asyncpg.connect(**POSTGRES, timeout=3)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database made for this run."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.db'}"
        return
    name = f"hasten_demo_{uuid.uuid4().hex[:12]}"
    try:
        run_on_postgres(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"no PostgreSQL at {POSTGRES['host']}:{POSTGRES['port']} ({exc!r})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    try:
        yield f"postgresql://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{name}"
    finally:
        run_on_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Shop:
    url: str
    env: dict[str, str]
    """What the app and the worker run with: Redis, queue and database."""


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_ready(url: str, processes: dict[str, subprocess.Popen[str]], logs: Path) -> None:
    """Until the app answers and counts a live worker on its queue."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"the {name} process exited with {process.returncode}:\n{_log_tail(logs / name)}"
                )
        try:
            response = httpx.get(f"{url}/health", timeout=5)
            if response.status_code == 200 and response.json()["workers"] > 0:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            output = "\n".join(f"--- {name}:\n{_log_tail(logs / name)}" for name in processes)
            raise AssertionError(f"the shop was not ready within {STARTUP_TIMEOUT}s\n{output}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def shop(
    database: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """``uvicorn examples.shop.app:app`` and ``hasten worker examples.shop.jobs:queue``,
    sharing *database* and a queue of their own on the tests' private Redis."""
    env = {
        "HASTEN_REDIS_URL": redis_server.url,
        "SHOP_QUEUE": f"shop-{uuid.uuid4().hex[:12]}",
        "DATABASE_URL": database,
    }
    url = f"http://127.0.0.1:{free_port()}"
    logs = tmp_path_factory.mktemp("shop-logs")
    outputs: list[IO[str]] = []

    def output(name: str) -> IO[str]:
        outputs.append((logs / name).open("w"))
        return outputs[-1]

    processes = {
        "worker": hasten_process(
            "worker", TARGET, "--concurrency", "10", "--shutdown-grace", "5",
            env=env, stdout=output("worker"), stderr=subprocess.STDOUT,
        ),
        "web": subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.shop.app:app", "--port", url.rpartition(":")[2]],
            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, text=True,
            stdout=output("web"), stderr=subprocess.STDOUT,
        ),
    }  # fmt: skip
    try:
        _wait_until_ready(url, processes, logs)
        yield Shop(url=url, env=env)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for stream in outputs:
            stream.close()


@pytest.fixture
async def http(shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=40) as client:
        yield client


async def result_of(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await http.get(f"/jobs/{job_id}/result", params={"timeout": 20})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_signup_writes_a_welcome_email_to_the_outbox(http: httpx.AsyncClient) -> None:
    email = f"ada+{secrets.token_hex(4)}@example.com"
    response = await http.post("/signup", json={"email": email})
    assert response.status_code == 201, response.text
    result = await result_of(http, response.json()["job_id"])
    assert result["status"] == "complete"

    outbox = (await http.get("/outbox")).json()
    (sent,) = [row for row in outbox if row["recipient"] == email]
    assert sent["id"] == result["value"]
    assert sent["subject"] == "Welcome to the shop!"
    assert (await http.post("/signup", json={"email": email})).status_code == 409


async def test_report_streams_its_progress_then_completes(http: httpx.AsyncClient) -> None:
    started = await http.post("/reports")
    assert started.status_code == 202, started.text
    job_id, report_id = started.json()["job_id"], started.json()["report_id"]

    async with http.stream("GET", f"/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in sse_events(response)]

    fractions = [data["fraction"] for kind, data in events if kind == "progress"]
    assert len(fractions) >= 2, events
    assert fractions == sorted(fractions) and fractions[0] < fractions[-1] == 1.0
    kind, final = events[-1]
    assert (kind, final["status"]) == ("status", "complete")

    report = (await http.get(f"/reports/{report_id}")).json()
    assert report["status"] == "ready"
    assert report["users"] is not None and report["emails_sent"] is not None
    assert report["finished_at"] is not None
    assert (await result_of(http, job_id))["value"]["id"] == report_id


async def test_a_declined_charge_retries_then_is_dead_lettered(http: httpx.AsyncClient, shop: Shop) -> None:
    started = await http.post("/orders/1042/charge")
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]

    result = await result_of(http, job_id)
    assert (result["status"], result["error_type"]) == ("failed", DECLINED)
    assert "card declined for order 1042" in result["error_message"]
    info = (await http.get(f"/jobs/{job_id}")).json()
    assert info["attempts"] == charge_card.options.retries + 1 == 3

    letters = {letter["id"]: letter for letter in (await http.get("/dead-letters")).json()}
    assert letters[job_id]["error_type"] == DECLINED
    assert letters[job_id]["attempts"] == 3
    listed = hasten_process("dlq", "list", TARGET, env=shop.env)
    stdout, stderr = listed.communicate(timeout=30)
    assert listed.returncode == 0, stderr
    assert job_id in stdout and "charge_card" in stdout


async def test_the_enqueue_endpoint_validates_the_body(http: httpx.AsyncClient) -> None:
    email = f"grace+{secrets.token_hex(4)}@example.com"
    signed_up = (await http.post("/signup", json={"email": email})).json()
    await result_of(http, signed_up["job_id"])

    wrong = await http.post("/jobs/tasks/send_welcome", json={"user_id": "grace"})
    assert wrong.status_code == 422, wrong.text
    assert "user_id" in wrong.text
    assert (await http.post("/jobs/tasks/send_welcome", json={})).status_code == 422
    assert (await http.post("/signup", json={"email": "not an email"})).status_code == 422

    accepted = await http.post("/jobs/tasks/send_welcome", json={"user_id": signed_up["user_id"]})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    assert accepted.headers["location"].endswith(f"/jobs/{job_id}")
    result = await result_of(http, job_id)
    assert result["status"] == "complete"
    outbox = (await http.get("/outbox")).json()
    assert [row["recipient"] for row in outbox].count(email) == 2


def test_database_url_uses_async_drivers() -> None:
    assert database_url({"DATABASE_URL": "postgresql://u:pw@db:5432/shop"}) == (
        "postgresql+asyncpg://u:pw@db:5432/shop"
    )
    assert database_url({"DATABASE_URL": "postgres://u@db/shop"}) == "postgresql+asyncpg://u@db/shop"
    assert database_url({"DATABASE_URL": "sqlite:///shop.db"}) == "sqlite+aiosqlite:///shop.db"
    assert database_url({}).startswith("sqlite+aiosqlite:///")
