#!/usr/bin/env bash
# Run a command with HASTEN_REDIS_URL pointing at a Redis that answers: the one already
# in HASTEN_REDIS_URL, else localhost:6379 if it answers, else a private redis-server on a
# free port, stopped when the command ends.
set -euo pipefail
ping_url() {
    "${PY:-.venv/bin/python}" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}
if [ -n "${HASTEN_REDIS_URL:-}" ]; then
    if ! ping_url "$HASTEN_REDIS_URL"; then
        echo "HASTEN_REDIS_URL=$HASTEN_REDIS_URL does not answer" >&2
        exit 1
    fi
elif ping_url "redis://localhost:6379/0"; then
    export HASTEN_REDIS_URL="redis://localhost:6379/0"
else
    scripts/ensure-redis-server.sh
    port=$("${PY:-.venv/bin/python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    dir=$(mktemp -d)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly yes \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 50); do ping_url "redis://127.0.0.1:$port/0" && break; sleep 0.1; done
    export HASTEN_REDIS_URL="redis://127.0.0.1:$port/0"
    echo "started a private redis-server on port $port" >&2
fi
"$@"
