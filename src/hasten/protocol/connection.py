"""Redis connections: fail-fast clients, error mapping, and the startup check."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hasten.errors import QueueFull, RedisError, RedisUnavailable, UnsupportedRedis
from hasten.settings import Settings

__all__ = ["MIN_REDIS", "check_server", "make_client", "redis_errors"]

log = logging.getLogger("hasten.redis")

MIN_REDIS = (6, 2, 0)


def make_client(settings: Settings, *, blocking: bool = False) -> Redis:
    """A client that fails within the configured timeouts; ``blocking`` clients wait forever
    for a reply (their callers bound the wait themselves)."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=None if blocking else settings.timeout,
        socket_keepalive=True,
        # One quick retry covers a pooled connection that died while idle (a Redis
        # restart); anything longer is the caller's decision.
        retry=Retry(NoBackoff(), 1),
        max_connections=settings.max_connections,
        health_check_interval=0 if blocking else 30,
        decode_responses=False,
        client_name="hasten",
        # RESP2 on every redis-py version hasten supports: the same replies everywhere,
        # and no HELLO, which old servers and some proxies refuse.
        protocol=2,
    )


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Turn redis-py's exceptions into hasten's."""
    try:
        yield
    except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
        raise RedisUnavailable(f"Redis is unreachable: {type(exc).__name__}: {exc}") from exc
    except rx.OutOfMemoryError as exc:
        raise QueueFull(f"Redis is full (maxmemory reached): {exc}") from exc
    except rx.ReadOnlyError as exc:
        raise RedisUnavailable(f"Redis is a read-only replica now (a failover?): {exc}") from exc
    except rx.ResponseError as exc:
        message = str(exc)
        if message.startswith("OOM"):
            raise QueueFull(f"Redis is full (maxmemory reached): {message}") from exc
        if message.startswith(("READONLY", "MASTERDOWN", "LOADING")):
            raise RedisUnavailable(f"Redis cannot take writes now: {message}") from exc
        raise RedisError(message) from exc
    except rx.RedisError as exc:
        raise RedisError(str(exc)) from exc


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


async def check_server(redis: Redis) -> dict[str, Any]:
    """Refuse a Redis older than `MIN_REDIS`; warn when it may lose or evict jobs."""
    async with redis_errors():
        info = await redis.info("server")
    version_text = str(info.get("redis_version", "0"))
    if parse_version(version_text) < MIN_REDIS:
        raise UnsupportedRedis(
            f"Redis {version_text} is too old: hasten needs Redis >= "
            f"{'.'.join(map(str, MIN_REDIS))} (or Valkey >= 7.2)"
        )
    try:
        async with redis_errors():
            config = {
                _text(k): _text(v)
                for name in ("maxmemory-policy", "appendonly", "save")
                for k, v in (await redis.config_get(name)).items()
            }
    except RedisError as exc:
        log.warning(
            "cannot read Redis config (%s): make sure maxmemory-policy is noeviction and "
            "persistence is on, or jobs may be lost",
            exc,
        )
        return dict(info)
    policy = config.get("maxmemory-policy", "")
    if policy != "noeviction":
        log.warning(
            "Redis maxmemory-policy is %s: Redis may evict queued jobs; set it to noeviction",
            policy or "unknown",
        )
    if config.get("appendonly") != "yes" and not config.get("save"):
        log.warning("Redis persistence is off (no AOF, no RDB snapshots): a Redis restart loses every job")
    return dict(info)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
