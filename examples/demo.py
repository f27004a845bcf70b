"""`make demo`: the shop example (examples/shop/) running for real, driven over HTTP.

It starts two processes, the way you would run them in production::

    uvicorn examples.shop.app:app --port PORT                       # shown as [web]
    python -m hasten worker examples.shop.jobs:queue --concurrency 10   # shown as [worker]

They share one database (a throwaway SQLite file, or ``DATABASE_URL``) and one Redis
(``HASTEN_REDIS_URL``). The demo then signs a user up and waits for the welcome email,
streams a report's live progress, watches a failing charge retry and land in the
dead-letter queue, enqueues a task through the jobs router, and sends two bad requests.
At the end it stops both processes with SIGTERM and deletes its own Redis keys and files.
"""

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx2 as httpx

from hasten import Queue

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: both processes run there and import `examples.shop`."""

TARGET = "examples.shop.jobs:queue"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class DemoFailed(Exception):
    """Raised when the demo sees something other than what it narrates."""


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def say(text: str, prefix: str = "  ") -> None:
    """Print narration line by line, flushed so it shows live even through a pipe."""
    for line in text.splitlines() or [""]:
        print(prefix + line, flush=True)


def compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A child process whose output is shown line by line as ``[label] ...``."""

    def __init__(self, label: str, command: Sequence[str], env: dict[str, str]) -> None:
        self.label = label
        self.command = list(command)
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def start(self) -> None:
        say(f"$ {' '.join(['python', *self.command[1:]])}")
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._pump = asyncio.create_task(self._show_output())

    async def stop(self) -> None:
        """SIGTERM, as a process manager would send it; a kill if it does not end in time."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            say(f"sending SIGTERM to the {self.label} process")
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            code = await process.wait()
            say(f"the {self.label} process did not stop within {STOP_TIMEOUT:.0f}s; killed it")
        if self._pump is not None:
            await self._pump
        if code == -signal.SIGTERM:  # uvicorn shuts down cleanly, then ends by the signal
            say(f"the {self.label} process ended by SIGTERM, after its shutdown above")
        else:
            say(f"the {self.label} process exited with code {code}")

    async def _show_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            say(raw.decode(errors="replace").rstrip(), prefix=f"  [{self.label}] ")


async def show_command(*args: str, env: dict[str, str]) -> None:
    """Run ``python -m hasten ARGS`` and show its output, as a shell would."""
    say(f"$ hasten {' '.join(args)}")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hasten", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    say(output.decode(errors="replace").rstrip() or "(no output)", prefix="  | ")
    say(f"(exit code {process.returncode})", prefix="  | ")


async def call(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request and show it with its answer."""
    sent = f" {compact(kwargs['json'])}" if "json" in kwargs else ""
    query = "?" + "&".join(f"{k}={v}" for k, v in kwargs["params"].items()) if "params" in kwargs else ""
    say(f"-> {method} {path}{query}{sent}")
    response = await http.request(method, path, **kwargs)
    body = response.json()
    if response.status_code == 422 and isinstance(body.get("detail"), list):
        for error in body["detail"]:  # FastAPI's own validation errors
            say(f"<- 422 {'.'.join(map(str, error['loc']))}: {error['msg']}")
    else:
        say(f"<- {response.status_code} {compact(body)}")
    return response


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise DemoFailed(f"expected HTTP {status}, got {response.status_code}: {response.text}")
    return response.json()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events stream, as they arrive."""
    event, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif not line and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def wait_until_ready(http: httpx.AsyncClient, children: Sequence[Child]) -> None:
    """Until the app answers ``GET /health`` and counts a live worker on its queue."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        for child in children:
            if child.exited:
                raise DemoFailed(f"the {child.label} process exited during start-up")
        try:
            response = await http.get("/health")
            if response.status_code == 200 and response.json()["workers"] > 0:
                say(f"GET /health: {compact(response.json())}")
                return
        except httpx.TransportError:
            pass  # uvicorn is not listening yet
        if time.monotonic() > deadline:
            raise DemoFailed(f"the app and its worker were not ready within {STARTUP_TIMEOUT:.0f}s")
        await asyncio.sleep(0.2)


async def signup(http: httpx.AsyncClient) -> int:
    section("1. Sign up: the welcome email is a job")
    email = f"ada+{secrets.token_hex(3)}@example.com"
    created = expect(await call(http, "POST", "/signup", json={"email": email}), 201)
    say("The route committed the user, enqueued send_welcome(user_id) and answered at once.")
    say("Wait for the job's result over HTTP (the jobs router waits on Redis pub/sub):")
    path = f"/jobs/{created['job_id']}/result"
    result = expect(await call(http, "GET", path, params={"timeout": 10}), 200)
    if result["status"] != "complete":
        raise DemoFailed(f"the welcome job ended {result['status']}")
    say("The worker wrote the email through the same get_session dependency as the routes:")
    emails = expect(await http.get("/outbox"), 200)
    (email_row,) = [row for row in emails if row["recipient"] == email]
    say(f"GET /outbox -> to: {email_row['recipient']}, subject: {email_row['subject']!r}")
    say(f"               body: {email_row['body']!r}")
    return int(created["user_id"])


async def report(http: httpx.AsyncClient) -> None:
    section("2. A report, with its progress streamed live")
    started = expect(await call(http, "POST", "/reports"), 202)
    path = f"/jobs/{started['job_id']}/events"
    say(f"-> GET {path}   (Server-Sent Events, shown as they arrive)")
    begin = time.monotonic()
    async with asyncio.timeout(30), http.stream("GET", path) as response:
        async for event, data in sse_events(response):
            elapsed = f"+{time.monotonic() - begin:.2f}s"
            if event == "progress":
                fraction = data["fraction"] or 0.0
                bar = "#" * round(fraction * 20)
                extra = compact(data["data"])
                say(f"   {elapsed:>7}  progress [{bar:<20}] {fraction:4.0%}  {data['message']}  {extra}")
            else:
                say(f"   {elapsed:>7}  {event:<8} {data.get('status')} (attempts: {data.get('attempts')})")
    say("The stream ended with the job. The report row the job filled in:")
    stored = expect(await call(http, "GET", f"/reports/{started['report_id']}"), 200)
    if stored["status"] != "ready":
        raise DemoFailed(f"the report is {stored['status']}, not ready")


async def failing_charge(http: httpx.AsyncClient, env: dict[str, str]) -> None:
    section("3. A charge that always fails: retries, then the dead-letter queue")
    say("charge_card raises PaymentDeclined; retries=2 with a short backoff. Watch [worker]:")
    started = expect(await call(http, "POST", "/orders/1042/charge"), 202)
    path = f"/jobs/{started['job_id']}"
    result = expect(await call(http, "GET", f"{path}/result", params={"timeout": 20}), 200)
    if result["status"] != "failed":
        raise DemoFailed(f"the charge ended {result['status']}, not failed")
    info = expect(await http.get(path), 200)
    say(f"GET {path} -> status {info['status']} after {info['attempts']} attempts")
    letters = expect(await call(http, "GET", "/dead-letters"), 200)
    if started["job_id"] not in [letter["id"] for letter in letters]:
        raise DemoFailed("the failed charge is not in the dead-letter queue")
    say("The same dead letter from the shell:")
    await show_command("dlq", "list", TARGET, env=env)


async def enqueue_endpoint(http: httpx.AsyncClient, user_id: int) -> None:
    section("4. Enqueue a task over HTTP: jobs_router(queue, enqueue=[send_welcome])")
    say("The JSON body is the task's arguments, validated against its signature:")
    accepted = expect(await call(http, "POST", "/jobs/tasks/send_welcome", json={"user_id": user_id}), 202)
    job_id = accepted["id"]
    result = expect(await call(http, "GET", f"/jobs/{job_id}/result", params={"timeout": 10}), 200)
    if result["status"] != "complete":
        raise DemoFailed(f"the welcome job ended {result['status']}")
    emails = expect(await http.get("/outbox"), 200)
    say(f"GET /outbox -> {len(emails)} emails now")


async def bad_requests(http: httpx.AsyncClient) -> None:
    section("5. Bad requests are 422s, and nothing is enqueued")
    rejected = await call(http, "POST", "/jobs/tasks/send_welcome", json={"user_id": "ada"})
    expect(rejected, 422)
    rejected = await call(http, "POST", "/signup", json={"email": "not an email"})
    expect(rejected, 422)


async def delete_queue_keys(queue_name: str) -> None:
    """A real queue lives on; this throwaway one deletes its own keys (and nothing else)."""
    queue = Queue(queue_name)
    try:
        pattern = f"{queue.keys.prefix}*"  # "hasten:{shop-demo-...}:*": this queue's keys only
        keys = [key async for key in queue.redis.scan_iter(match=pattern, count=500)]
        if keys:
            await queue.redis.delete(*keys)
        say(f"deleted the {len(keys)} Redis keys of queue {queue_name}")
    finally:
        await queue.close()


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hasten-shop-demo-"))
    queue_name = f"shop-demo-{secrets.token_hex(4)}"
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "SHOP_QUEUE": queue_name, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1"}
    own_database = "DATABASE_URL" not in os.environ
    if own_database:
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'shop.db'}"
    port = free_port()
    web = Child(
        "web",
        [sys.executable, "-m", "uvicorn", "examples.shop.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log"],
        env,
    )  # fmt: skip
    worker = Child("worker", [sys.executable, "-m", "hasten", "worker", TARGET, "--concurrency", "10"], env)
    print(f"hasten shop demo: queue {queue_name}, Redis {os.environ.get('HASTEN_REDIS_URL')}", flush=True)
    print(f"database: {env['DATABASE_URL'] if own_database else 'DATABASE_URL from the environment'}")
    try:
        section("Starting the web app and a worker")
        await web.start()
        await worker.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await wait_until_ready(http, [web, worker])
            await show_command("check", TARGET, env=env)
            user_id = await signup(http)
            await report(http)
            await failing_charge(http, env)
            await enqueue_endpoint(http, user_id)
            await bad_requests(http)
    finally:
        section("Stopping")
        await worker.stop()
        await web.stop()
        section("Cleanup")
        await delete_queue_keys(queue_name)
        shutil.rmtree(workdir, ignore_errors=True)
        if own_database:
            say(f"deleted {workdir}")
    print("\ndone.", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except DemoFailed as exc:
        sys.exit(f"demo failed: {exc}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
