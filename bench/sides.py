"""Run one library's side script in that library's own venv, as a child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from common import READY

__all__ = ["BenchError", "Side", "WorkerProcess"]

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 180.0


class BenchError(RuntimeError):
    """A side process failed, hung, or reported something impossible."""


def _child_env() -> dict[str, str]:
    # HASTEN_* variables (a signing key, another serializer) would change what is measured.
    return {k: v for k, v in os.environ.items() if not k.startswith("HASTEN_")}


def _last_json(stdout: str, what: str, stderr: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip() and line != READY]
    if not lines:
        raise BenchError(f"{what} printed no result\n{_tail(stderr)}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class Side:
    """One library: the python of its venv and its side script in bench/."""

    name: str
    python: str
    script: Path

    def command(self, *args: str) -> list[str]:
        return [self.python, str(self.script), *args]

    def run(self, *args: str, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """Run a side command to its end and return the JSON it printed last."""
        what = f"{self.name} {args[0]}"
        try:
            done = subprocess.run(
                self.command(*args),
                cwd=ROOT,
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{what} did not finish within {timeout:.0f}s") from exc
        if done.returncode != 0:
            raise BenchError(f"{what} exited with {done.returncode}\n{_tail(done.stderr)}")
        return _last_json(done.stdout, what, done.stderr)

    def start_worker(self, *args: str) -> WorkerProcess:
        """Start a long-running worker process; stop it with `WorkerProcess.stop`."""
        return WorkerProcess(self, self.command("worker", *args))


class WorkerProcess:
    """A worker child process whose output goes to files, so nothing can block on a pipe.

    ```python
    with side.start_worker(url) as worker:
        worker.wait_ready()
        ...
        report = worker.stop()          # SIGTERM, then SIGKILL; its final JSON report
    ```
    """

    def __init__(self, side: Side, command: list[str]) -> None:
        self.name = f"{side.name} worker"
        self._dir = tempfile.TemporaryDirectory(prefix="hasten-bench-worker-")
        self._stdout = Path(self._dir.name, "stdout")
        self._stderr = Path(self._dir.name, "stderr")
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=_child_env(), stdout=out, stderr=err)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._dir.cleanup()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the worker's ``ready`` line: it has imported everything and is about to serve."""
        deadline = time.monotonic() + timeout
        while READY not in self._stdout.read_text().splitlines():
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}\n{self._errors()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} was not ready within {timeout:.0f}s\n{self._errors()}")
            time.sleep(0.01)

    def stop(self, grace: float = 15.0) -> dict[str, Any]:
        """SIGTERM (SIGKILL if it is still running after *grace* seconds); its final report."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            raise BenchError(f"{self.name} ignored SIGTERM for {grace:.0f}s\n{self._errors()}") from exc
        if self.process.returncode != 0:
            raise BenchError(f"{self.name} exited with {self.process.returncode}\n{self._errors()}")
        return _last_json(self._stdout.read_text(), self.name, self._errors())

    def _errors(self) -> str:
        return _tail(self._stderr.read_text())
