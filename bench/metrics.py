"""The measurements: each starts a fresh private redis-server, drives one library's side
processes against it, and returns that library's raw numbers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sides import BenchError, Side
from tests.redis_server import RedisServer

__all__ = ["Sizes", "measure_library"]

SLEEP_CONCURRENCY = 100
LATENCY_INTERVAL_S = 0.02
LATENCY_SETTLE_S = 1.0
PAYLOAD_BYTES = 100


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many jobs each measurement uses."""

    bulk: int = 10_000
    single: int = 10_000
    noop: int = 10_000
    sleep: int = 2_000
    latency: int = 200
    memory: int = 100_000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(bulk=1_000, single=1_000, noop=1_000, sleep=200, latency=20, memory=1_000)


def enqueue_rate(side: Side, n: int, mode: str) -> dict[str, Any]:
    """Metrics 1 and 2: jobs/s of enqueueing *n* no-op jobs in bulk or one awaited call at a time."""
    with RedisServer() as server:
        out = side.run("enqueue", server.url, "--n", str(n), "--mode", mode)
    return {**out, "rate": n / out["seconds"]}


def worker_throughput(side: Side, task: str, n: int, concurrency: int | None = None) -> dict[str, Any]:
    """Metrics 3, 4 and 7: one burst worker process over *n* jobs enqueued before it started."""
    with RedisServer() as server:
        side.run("enqueue", server.url, "--task", task, "--n", str(n))
        options = [] if concurrency is None else ["--concurrency", str(concurrency)]
        report = side.run("worker", server.url, "--burst", *options)
    if report["jobs"] != n:
        raise BenchError(f"{side.name} worker ran {report['jobs']} of {n} {task} jobs: {report['stats']}")
    seconds = report["last_end"] - report["first_start"]
    return {
        "jobs": n,
        "seconds": seconds,
        "rate": n / seconds,
        "max_rss_mib": report["max_rss_mib"],
        "stats": report["stats"],
    }


def latency(side: Side, n: int) -> dict[str, Any]:
    """Metric 5: enqueue-to-start latency of jobs sent at a steady pace to an idle worker."""
    with RedisServer() as server, side.start_worker(server.url) as worker:
        worker.wait_ready()
        time.sleep(LATENCY_SETTLE_S)
        side.run("send", server.url, "--n", str(n), "--interval", str(LATENCY_INTERVAL_S))
        report = worker.stop()
    samples_ms = [s * 1000 for s in report["latencies"]]
    if len(samples_ms) != n:
        raise BenchError(f"{side.name} worker recorded {len(samples_ms)} of {n} latencies")
    percentiles = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "jobs": n,
        "p50_ms": percentiles[49],
        "p99_ms": percentiles[98],
        "max_ms": max(samples_ms),
        "samples_ms": samples_ms,
    }


def memory_per_job(side: Side, n: int) -> dict[str, Any]:
    """Metric 6: Redis used_memory growth per queued job carrying a 100-byte string."""
    with RedisServer() as server:
        before = server.used_memory()
        side.run(
            "enqueue", server.url, "--task", "carry", "--n", str(n), "--payload-bytes", str(PAYLOAD_BYTES)
        )
        after = server.used_memory()
        keys = int(server.info("keyspace").get("db0", {}).get("keys", 0))
    return {"jobs": n, "before": before, "after": after, "bytes_per_job": (after - before) / n, "keys": keys}


def redis_version() -> str:
    with RedisServer() as server:
        return str(server.info("server")["redis_version"])


def measure_library(side: Side, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement of one library, one after the other; *log* gets a line per step."""
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "bulk_enqueue": lambda: enqueue_rate(side, sizes.bulk, "bulk"),
        "single_enqueue": lambda: enqueue_rate(side, sizes.single, "single"),
        "noop_throughput": lambda: worker_throughput(side, "noop", sizes.noop),
        "sleep_throughput": lambda: worker_throughput(side, "sleep", sizes.sleep, SLEEP_CONCURRENCY),
        "latency": lambda: latency(side, sizes.latency),
        "memory": lambda: memory_per_job(side, sizes.memory),
    }
    results: dict[str, Any] = {"versions": side.run("versions")}
    for name, step in steps.items():
        began = time.monotonic()
        results[name] = step()
        log(f"  {side.name} {name}: done in {time.monotonic() - began:.1f}s")
    return results
