#!/usr/bin/env bash
# Benchmark hasten against arq (make bench). arq needs redis<6, so it gets its own venv;
# bench/run.py measures each library in child processes of its own venv's python, one
# library after the other, each measurement against a fresh private redis-server.
# Extra arguments go to bench/run.py (e.g. --quick for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
ARQ_VENV=.venv-bench-arq
ARQ_VERSION=0.28.0
if [ ! -x "$ARQ_VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$ARQ_VENV"
fi
if ! "$ARQ_VENV/bin/python" -c "import arq.version, sys; sys.exit(arq.version.VERSION != '$ARQ_VERSION')" 2>/dev/null; then
    "$ARQ_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "arq==$ARQ_VERSION"
fi
# bench/metrics.py starts its Redis servers with tests/redis_server.py, from the repository root.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python bench/run.py --arq-python "$ARQ_VENV/bin/python" "$@"
