#!/usr/bin/env bash
# What the test suite runs besides Python: redis-server (private servers) and faketime
# (clock-skew tests; skipped where it cannot be installed, but required when CI=true).
set -euo pipefail
"$(dirname "$0")/ensure-redis-server.sh"
if command -v faketime >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing faketime with apt-get..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
    exit 0
fi
echo "faketime is missing (Debian/Ubuntu: sudo apt-get install faketime): clock-skew tests will be skipped" >&2
