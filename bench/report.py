"""Turn both libraries' raw numbers into the markdown table and its footnotes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metrics import LATENCY_INTERVAL_S, LATENCY_SETTLE_S, PAYLOAD_BYTES, SLEEP_CONCURRENCY, Sizes

__all__ = ["render", "table_rows"]

Raw = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Metric:
    label: str
    better: str
    """``higher`` or ``lower``."""
    value: Callable[[Raw], float]
    digits: int


def metrics(sizes: Sizes) -> list[Metric]:
    return [
        Metric(
            f"bulk enqueue, {sizes.bulk:,} jobs (jobs/s) [1]",
            "higher",
            lambda r: r["bulk_enqueue"]["rate"],
            0,
        ),
        Metric(
            f"one-by-one enqueue, {sizes.single:,} jobs (jobs/s) [2]",
            "higher",
            lambda r: r["single_enqueue"]["rate"],
            0,
        ),
        Metric(
            f"no-op throughput, 1 worker, {sizes.noop:,} jobs (jobs/s) [3]",
            "higher",
            lambda r: r["noop_throughput"]["rate"],
            0,
        ),
        Metric(
            f"10 ms sleep jobs, concurrency {SLEEP_CONCURRENCY}, {sizes.sleep:,} jobs (jobs/s) [4]",
            "higher",
            lambda r: r["sleep_throughput"]["rate"],
            0,
        ),
        Metric(
            f"enqueue→start latency p50, {sizes.latency:,} jobs (ms) [5]",
            "lower",
            lambda r: r["latency"]["p50_ms"],
            2,
        ),
        Metric(
            f"enqueue→start latency p99, {sizes.latency:,} jobs (ms) [5]",
            "lower",
            lambda r: r["latency"]["p99_ms"],
            2,
        ),
        Metric(
            f"Redis bytes per queued job, {PAYLOAD_BYTES}-byte payload [6]",
            "lower",
            lambda r: r["memory"]["bytes_per_job"],
            0,
        ),
        Metric(
            "worker peak RSS, no-op run (MiB) [7]", "lower", lambda r: r["noop_throughput"]["max_rss_mib"], 1
        ),
    ]


def table_rows(sizes: Sizes, hasten: Raw, arq: Raw) -> list[dict[str, Any]]:
    """One row per metric: both values, their ratio and which direction is better."""
    rows = []
    for metric in metrics(sizes):
        h, a = metric.value(hasten), metric.value(arq)
        rows.append(
            {
                "metric": metric.label,
                "hasten": h,
                "arq": a,
                "ratio": h / a if a else None,
                "better": metric.better,
                "digits": metric.digits,
            }
        )
    return rows


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| metric | hasten | arq | hasten/arq | better |", "| --- | ---: | ---: | ---: | --- |"]
    for row in rows:
        digits = row["digits"]
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.3g}x"
        lines.append(
            f"| {row['metric']} | {row['hasten']:,.{digits}f} | {row['arq']:,.{digits}f} | {ratio} "
            f"| {row['better']} |"
        )
    return "\n".join(lines)


def _footnotes(sizes: Sizes, environment: list[str]) -> str:
    notes = [
        "[1] hasten: one `enqueue_many` call (pipelined). arq has no bulk API: `asyncio.gather` of "
        "`enqueue_job` calls in chunks of 1,000, its fastest way.",
        "[2] Sequential awaited calls: hasten `task.enqueue(i)`, arq `enqueue_job('noop', i)`.",
        "[3] The jobs are enqueued in bulk first, then one worker process runs them in burst mode; "
        "rate = jobs / (last job end - first job start), both taken with `time.time()` inside the job. "
        "Library defaults: hasten concurrency 100, arq max_jobs 10.",
        f"[4] As [3], jobs doing `await asyncio.sleep(0.01)`, at concurrency {SLEEP_CONCURRENCY} for both "
        f"(hasten concurrency={SLEEP_CONCURRENCY}, arq max_jobs={SLEEP_CONCURRENCY}).",
        f"[5] An idle (non-burst) worker process, given {LATENCY_SETTLE_S:.0f} s to settle once it reported "
        f"ready; then another process sends {sizes.latency} jobs, one every "
        f"{LATENCY_INTERVAL_S * 1000:.0f} ms, each carrying `time.time()` at enqueue; a sample is "
        "`time.time()` at job start minus that. "
        "arq polls Redis every 0.5 s (poll_delay default); hasten's idle worker blocks on Redis until woken.",
        f"[6] INFO memory `used_memory` after minus before enqueueing {sizes.memory:,} jobs, whose argument "
        f"is a {PAYLOAD_BYTES}-character ASCII str, into an empty private Redis, divided by the job count "
        "(once-per-queue costs such as hasten's Lua scripts are spread over the jobs).",
        "[7] `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the worker process of [3].",
        "",
        "Method: each library is measured on its own (hasten first, then arq), every measurement against a "
        "fresh private `redis-server` on 127.0.0.1 without persistence, producers and workers in separate "
        "processes, one run per metric. arq runs at `arq.worker.Worker` defaults (max_jobs=10, "
        "poll_delay=0.5, job_timeout=300, keep_result=3600, max_tries=5) on asyncio's default loop; hasten "
        "at `Worker` defaults (concurrency 100) with task defaults except retries=0, on uvloop through "
        "`hasten.cli.run_async`. Workers are run by bench/hasten_side.py and bench/arq_side.py rather "
        "than the CLIs, both logging at WARNING (the `arq` command logs every job at INFO). "
        '"better" is the direction that is better for the metric; hasten/arq is the plain ratio.',
        "",
        "Environment: " + "; ".join(environment) + ".",
    ]
    return "\n".join(notes)


def render(sizes: Sizes, rows: list[dict[str, Any]], environment: list[str]) -> str:
    return f"{_markdown_table(rows)}\n\n{_footnotes(sizes, environment)}\n"
