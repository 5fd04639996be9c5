#!/usr/bin/env bash
# Makes sure the test dependencies are present: clickhouse-server (Debian's 18.16), chromium,
# Node.js with npm, and chdb (a current ClickHouse engine from the npm registry) for the
# modern-DDL checks.
# As root it installs what is missing; otherwise it says exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse-server ] || missing+=(clickhouse-server clickhouse-client)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "The tests need these Debian packages: ${missing[*]}" >&2
		echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi
./internal/chtest/chdb/install.sh
