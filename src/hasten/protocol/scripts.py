"""Load the Lua scripts and call them by SHA, reloading them after NOSCRIPT."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import msgpack
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

__all__ = ["SCRIPTS", "Script", "Scripts", "pack_rows"]

Arg = str | bytes | int | float

# Redis's Lua msgpack knows no bin type: bytes go as raw strings, which Lua keeps binary-safe.
_PACKER = msgpack.Packer(use_bin_type=False, autoreset=True)


def pack_rows(rows: Sequence[Sequence[Arg]]) -> bytes:
    """Many script rows as one argument: one C-level encode instead of one per field."""
    return _PACKER.pack(rows)  # type: ignore[no-any-return]


class Script:
    """One Lua script, with the shared prelude prepended."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, redis: Redis, prefix: str, args: Sequence[Arg]) -> Any:
        try:
            return await redis.evalsha(self.sha, 1, prefix, *args)
        except NoScriptError:
            # The server lost its script cache (restart, failover, SCRIPT FLUSH).
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, 1, prefix, *args)

    def queue_in(self, pipe: Pipeline, prefix: str, args: Sequence[Arg]) -> None:
        pipe.evalsha(self.sha, 1, prefix, *args)


def _read(name: str) -> str:
    return (resources.files("hasten.protocol") / "lua" / f"{name}.lua").read_text()


class Scripts:
    """All of hasten's scripts, loaded once per process."""

    def __init__(self) -> None:
        common = _read("_common")
        self.enqueue = Script("enqueue", common + _read("enqueue"))
        self.cycle = Script("cycle", common + _read("cycle"))
        self.renew = Script("renew", common + _read("renew"))
        self.abort = Script("abort", common + _read("abort"))
        self.inspect = Script("inspect", common + _read("inspect"))
        self.heartbeat = Script("heartbeat", common + _read("heartbeat"))
        self.dlq = Script("dlq", common + _read("dlq"))

    def all(self) -> tuple[Script, ...]:
        return (self.enqueue, self.cycle, self.renew, self.abort, self.inspect, self.heartbeat, self.dlq)

    async def load(self, redis: Redis) -> None:
        for script in self.all():
            await redis.script_load(script.source)


SCRIPTS = Scripts()
