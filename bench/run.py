"""Benchmark hasten against arq: ``make bench`` (``scripts/bench.sh``) runs this.

```
.venv/bin/python bench/run.py --arq-python .venv-bench-arq/bin/python [--quick]
```
Each library is measured in child processes that use its own venv's python, one library
after the other, every measurement against a fresh private redis-server. Prints a markdown
table and writes it to bench/results/latest.md, the raw numbers to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from metrics import Sizes, measure_library, redis_version
from report import render, table_rows
from sides import BenchError, Side

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--arq-python", required=True, help="python of a venv with arq installed")
    parser.add_argument("--quick", action="store_true", help="smaller job counts, for a smoke run")
    return parser.parse_args()


def environment(raw: dict[str, dict[str, Any]], redis: str) -> list[str]:
    """What the numbers were measured on, one item per thing."""
    items = [f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs", f"redis-server {redis}"]
    for results in raw.values():
        v = results["versions"]
        items.append(f"{v['library']} (Python {v['python']}, redis-py {v['redis-py']}, {v['event loop']})")
    return items


def main() -> int:
    args = parse_args()
    if not Path(args.arq_python).is_file():
        log(f"no python at {args.arq_python}: scripts/bench.sh (make bench) makes arq's venv")
        return 2
    began = time.monotonic()
    sizes = Sizes.quick() if args.quick else Sizes()
    sides = [
        Side("hasten", sys.executable, BENCH / "hasten_side.py"),
        Side("arq", args.arq_python, BENCH / "arq_side.py"),
    ]
    raw: dict[str, dict[str, Any]] = {}
    try:
        redis = redis_version()
        for side in sides:
            log(f"measuring {side.name} ({side.python})")
            raw[side.name] = measure_library(side, sizes, log)
    except BenchError as exc:
        log(f"benchmark failed: {exc}")
        return 1
    rows = table_rows(sizes, raw["hasten"], raw["arq"])
    env = environment(raw, redis)
    markdown = render(sizes, rows, env)
    runtime = time.monotonic() - began
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(markdown)
    summary = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "sizes": dataclasses.asdict(sizes),
        "environment": env,
        "runtime_s": runtime,
        "rows": rows,
        "raw": raw,
    }
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown)
    log(f"total runtime {runtime:.0f}s; written to {RESULTS / 'latest.md'} and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
