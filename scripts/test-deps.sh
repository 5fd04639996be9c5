#!/usr/bin/env bash
# Makes sure the test dependencies are present: clickhouse-server (Debian's 18.16), zookeeper
# (Debian's 3.8, run with java by internal/chtest for the replicated-cluster tests), chromium,
# Node.js with npm, chdb (a current ClickHouse engine from the npm registry) for the
# modern-DDL checks, and rsyslog with its TLS driver (rsyslog-gnutls) for the syslog sink. The
# OpenTelemetry Collector the otlp sink's tests run is built from Go modules by the tests
# themselves (internal/otelcoltest). PostgreSQL 15 serves the Flowker import's tests
# (internal/pgtest runs /usr/lib/postgresql/15/bin, as the postgres user when root).
# As root it installs what is missing; otherwise it says exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse-server ] || missing+=(clickhouse-server clickhouse-client)
{ [ -e /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; } || missing+=(zookeeper)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || missing+=(nodejs npm)
[ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(find /usr/lib -name lmnsd_gtls.so -print -quit 2>/dev/null)" ] || missing+=(rsyslog-gnutls)
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
