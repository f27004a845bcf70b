"""Private redis-server processes: every measurement gets a fresh one, never the shared Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

__all__ = ["RedisServer"]

_START_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server without persistence on a free port, in its own temporary directory.

    ```python
    with RedisServer() as server:      # started and answering PING
        ...server.url...
    # stopped (killed if it will not stop) and its directory removed, also on error
    ```
    """

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make redis-server installs it)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="hasten-bench-redis-"))
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        # Another process may take the free port before redis-server binds it: try again.
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.dir),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._wait_until_up():
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start ({_START_ATTEMPTS} attempts)")

    def _wait_until_up(self, timeout: float = 10.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    time.sleep(0.02)
        return False

    def info(self, section: str) -> dict[str, Any]:
        with redis.Redis(port=self.port) as client:
            return dict(client.info(section))

    def used_memory(self) -> int:
        return int(self.info("memory")["used_memory"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
