"""Typed, frozen settings: where Redis is, how long to wait for it, how jobs are encoded."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hasten.errors import ConfigurationError

__all__ = ["DEFAULT_REDIS_URL", "Backoff", "Settings"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"

SerializerName = Literal["msgpack", "json", "pickle"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """How long to wait before retry number *n*: ``base * factor ** (n - 1)``, capped at ``max``.

    ``jitter`` is the fraction of each delay that is randomised, so workers that failed
    together do not retry together:

    ```python
    Backoff()                              # 1 s, 2 s, 4 s, ... up to 5 min, ±50 % random
    Backoff(base=10, factor=3, max=3600)   # 10 s, 30 s, 90 s, ... up to 1 h
    Backoff(base=5, factor=1, jitter=0)    # every 5 s exactly
    ```
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max < 0 or not 0 <= self.jitter <= 1:
            raise ConfigurationError("Backoff needs base >= 0, factor >= 1, max >= 0 and 0 <= jitter <= 1")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number *retry* (1-based)."""
        raw = min(self.max, self.base * self.factor ** max(retry - 1, 0))
        return raw * (1 - self.jitter * random.random())


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Connection and encoding settings of a queue.

    ```python
    Settings()                                        # redis://localhost:6379/0, msgpack
    Settings.from_env()                               # HASTEN_REDIS_URL, HASTEN_SIGNING_KEY, ...
    Settings.from_url("redis://cache:6379/2", timeout=2.0)
    ```
    """

    redis_url: str = DEFAULT_REDIS_URL
    """Where Redis is: ``redis://``, ``rediss://`` (TLS) or ``unix://``."""
    connect_timeout: float = 2.0
    """Seconds to wait for a TCP connection before raising `RedisUnavailable`."""
    timeout: float = 5.0
    """Seconds to wait for any Redis reply before raising `RedisUnavailable`."""
    max_connections: int = 64
    """Connections the queue may open to Redis."""
    serializer: SerializerName = "msgpack"
    """How arguments and results are encoded. ``pickle`` requires a `signing_key`."""
    signing_key: bytes | None = field(default=None, repr=False)
    """When set, every payload carries an HMAC over (queue, job id, bytes), checked before decoding."""
    max_payload_bytes: int = 1024 * 1024
    """Largest encoded job accepted by `enqueue`; checked before anything is written."""

    def __post_init__(self) -> None:
        if self.serializer == "pickle" and not self.signing_key:
            raise ConfigurationError(
                "the pickle serializer needs a signing_key (HASTEN_SIGNING_KEY): unsigned pickle "
                "lets anyone who can write to Redis run code on your workers"
            )
        if self.connect_timeout <= 0 or self.timeout <= 0 or self.max_payload_bytes <= 0:
            raise ConfigurationError("timeouts and max_payload_bytes must be positive")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Settings:
        """Settings for the Redis at *url*."""
        return cls(redis_url=url, **overrides)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from ``HASTEN_*`` environment variables; *overrides* win."""
        env: dict[str, Any] = {}
        if url := os.environ.get("HASTEN_REDIS_URL"):
            env["redis_url"] = url
        if key := os.environ.get("HASTEN_SIGNING_KEY"):
            env["signing_key"] = key.encode()
        if name := os.environ.get("HASTEN_SERIALIZER"):
            env["serializer"] = name
        for var, attr in (("HASTEN_CONNECT_TIMEOUT", "connect_timeout"), ("HASTEN_TIMEOUT", "timeout")):
            if value := os.environ.get(var):
                env[attr] = float(value)
        return cls(**{**env, **overrides})

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)
