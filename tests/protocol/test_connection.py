from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hasten import Queue, UnsupportedRedis, Worker
from hasten.protocol.connection import parse_version
from tests.redis_server import RedisServer, free_port


async def test_warns_when_redis_may_evict_or_forget_jobs(hasten_warnings: list[str], queue_name: str) -> None:
    with RedisServer("--maxmemory-policy", "allkeys-lru") as server:
        async with Queue(queue_name, redis_url=server.url):
            pass
    assert any("maxmemory-policy is allkeys-lru" in m for m in hasten_warnings)
    assert any("persistence is off" in m for m in hasten_warnings)


async def test_no_warnings_for_a_safe_redis(hasten_warnings: list[str], queue_name: str) -> None:
    with RedisServer(appendonly=True) as server:
        async with Queue(queue_name, redis_url=server.url):
            pass
    assert hasten_warnings == []


async def test_warns_when_config_cannot_be_read(hasten_warnings: list[str], queue_name: str) -> None:
    with RedisServer("--rename-command", "CONFIG", "") as server:
        async with Queue(queue_name, redis_url=server.url):
            pass
    assert any("cannot read Redis config" in m for m in hasten_warnings)


class OldRedis:
    """A tiny RESP server that claims to be Redis 5.0: enough to test the version check."""

    def __init__(self) -> None:
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readline()
            if not header:
                break
            parts = []
            for _ in range(int(header[1:])):
                await reader.readline()
                parts.append((await reader.readline()).strip().decode())
            if parts[0].upper() == "INFO":
                body = b"# Server\r\nredis_version:5.0.14\r\n"
                writer.write(b"$%d\r\n%s\r\n" % (len(body), body))
            else:
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> OldRedis:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def old_redis() -> AsyncIterator[OldRedis]:
    async with OldRedis() as server:
        yield server


async def test_refuses_redis_older_than_6_2(old_redis: OldRedis) -> None:
    queue = Queue("old", redis_url=f"redis://127.0.0.1:{old_redis.port}/0")
    with pytest.raises(UnsupportedRedis, match=r"5\.0\.14 is too old.*6\.2"):
        await queue.connect()
    with pytest.raises(UnsupportedRedis):
        await Worker(queue, handle_signals=False).run()
    await queue.close()


def test_parse_version() -> None:
    assert parse_version("7.0.15") == (7, 0, 15)
    assert parse_version("6.2.0") >= (6, 2, 0) > parse_version("6.0.20")
