#!/usr/bin/env bash
# make bench: runs every benchmark, keeps the raw outputs under bench-results/<stamp>/ (not
# committed) and renders docs/BENCHMARKS.md from them (internal/loadtest/cmd/benchreport).
#
# Sections (each one command; every ratio compares measurements of the same command):
#   proxy              GET and audited POST, direct to the fake Flowker vs through the sidecar
#   proxy-service-time the same with a fake that takes 5 ms per response (Flowker-like)
#   proxy-intents      audited POSTs through the sidecar: the design before write-ahead intents
#                      (commit 004259c, built from git archive) against this checkout, alternately
#                      (scripts/bench-intents.sh; skipped when that commit is not in the history)
#   journal            journal appends/s, fsync on and off, 1/16/64 appenders; raw fdatasync
#   verify             chain verify vs raw SHA-256, 1 KiB events
#   nullsink-write     sink.Client.Write into the no-op plugin
#   nullsink-delivery  host.Supervisor delivery into the no-op plugin
#   plugin-delivery    host.Supervisor delivery from a bbolt journal into nullsink, SQLite and the
#                      forwarding plugins: syslog into rsyslogd (TCP), otlp into an OpenTelemetry
#                      Collector (gRPC, HTTP) built from internal/otelcoltest/collector
#   sqlite-write       the SQLite sink's Write in process
#   sqlite-search      SQLite query p50/p99 at 1M events
#   clickhouse         ClickHouse ingest and queries (plugins/clickhouse benchmarks)
#   clickhouse-cluster ClickHouse cluster (two replicas, ZooKeeper): 100 M events over 4 chains
#                      (FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS; quick 40,000): ingest plugin vs bare,
#                      search shapes, verify per chain, bytes per event (BenchmarkCluster)
#   ui                 the Audit Trail page's first screen with 100k events (Chromium)
#
# Environment:
#   BENCH_QUICK=1                 small sizes and short runs, to check the plumbing; the document
#                                 then goes to the results directory, not docs/
#   BENCH_ONLY=a,b / BENCH_SKIP=a,b  run only / skip these sections
#   BENCH_OUT=DIR                 results directory (default bench-results/<UTC stamp>); reusing
#                                 one keeps the sections already in it and replaces those run
#   BENCH_DOC=FILE                where the document goes (default docs/BENCHMARKS.md)
#   FLOWKER_AUDIT_BENCH_CH_ROWS=N ClickHouse data set size (default 10,000,000; quick 20,000)
#   BENCH_MAX_LOAD=X, BENCH_QUIET_WAIT=S  before each section wait up to S seconds (default 60)
#                                 for the 1-minute load average to fall to X (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${BENCH_QUICK:-0}
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES=${BENCH_OUT:-bench-results/$STAMP}
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
REL=${RES#"$PWD"/}
if [ "$QUICK" = 1 ]; then
	DOC=${BENCH_DOC:-$RES/BENCHMARKS.md}
else
	DOC=${BENCH_DOC:-docs/BENCHMARKS.md}
fi
CH_ROWS=${FLOWKER_AUDIT_BENCH_CH_ROWS:-10000000}
[ "$QUICK" = 1 ] && CH_ROWS=${FLOWKER_AUDIT_BENCH_CH_ROWS:-20000}
GO=${GO:-go}
BIN=bin/flowker-audit

echo "bench: results in $REL (quick=$QUICK), document: $DOC"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	make --no-print-directory build
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "nproc=$(nproc)"
	echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "mem_total=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "go_version=$($GO version | cut -d' ' -f3-)"
	echo "git_rev=$(git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "disk=$(df -hT . | awk 'NR==2 {print $1 " (" $2 ", " $3 ")"}')"
	echo "load_start=$(loadavg)"
	echo "quick=$QUICK"
	echo "results_dir=$REL"
} >"$RES/meta.env"
ln -sfn "$(basename "$RES")" "$(dirname "$RES")/latest" 2>/dev/null || true

selected() {
	local name=$1
	if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$name,"* ]]; then return 1; fi
	if [ -n "${BENCH_SKIP:-}" ] && [[ ",$BENCH_SKIP," == *",$name,"* ]]; then return 1; fi
	return 0
}

wait_quiet() {
	[ "$QUICK" = 1 ] && return 0
	local max=${BENCH_MAX_LOAD:-$(nproc)} limit=${BENCH_QUIET_WAIT:-60} waited=0
	while awk -v m="$max" '{exit !($1 > m)}' /proc/loadavg; do
		if [ "$waited" -ge "$limit" ]; then
			echo "bench: load average still $(loadavg) after ${limit}s; going on (it is recorded)"
			return 0
		fi
		sleep 5
		waited=$((waited + 5))
	done
}

# section NAME COMMAND: runs COMMAND with bash, recording it, its output and exit status.
section() {
	local name=$1 cmd=$2
	selected "$name" || return 0
	rm -f "$RES/$name".{cmd,out,status,load,started,secs}
	printf '%s\n' "$cmd" >"$RES/$name.cmd"
	wait_quiet
	loadavg >"$RES/$name.load"
	date -u '+%Y-%m-%d %H:%M:%S UTC' >"$RES/$name.started"
	echo "bench: [$name] $cmd   (load $(loadavg))"
	local t0=$SECONDS status=0
	bash -c "$cmd" >"$RES/$name.out" 2>&1 || status=$?
	echo "$status" >"$RES/$name.status"
	echo $((SECONDS - t0)) >"$RES/$name.secs"
	echo "bench: [$name] exit $status after $((SECONDS - t0))s"
	[ "$status" = 0 ] || tail -5 "$RES/$name.out" | sed 's/^/    /'
}

# skip NAME COMMAND REASON: records that a section was not run, and why.
skip() {
	local name=$1 cmd=$2 why=$3
	selected "$name" || return 0
	rm -f "$RES/$name".{cmd,out,status,load,started,secs}
	printf '%s\n' "$cmd" >"$RES/$name.cmd"
	echo "skipped: $why" >"$RES/$name.status"
	echo "bench: [$name] skipped: $why"
}

if [ "$QUICK" = 1 ]; then
	PROXY_FLAGS="-concurrency 32,64 -warmup 1s -duration 2s -rate 200 -profile-seconds 2"
	PROXY_ST_FLAGS="-concurrency 32 -warmup 1s -duration 2s -rate 0"
	INTENTS_ROUNDS=1 INTENTS_FLAGS="-methods POST -concurrency 32,64 -rounds 1 -warmup 1s -duration 2s -rate 1000"
	JOURNAL_TIME=100x VERIFY_FLAGS="-benchtime 2000x -count 1" WRITE_TIME=20x DELIVERY_TIME=2x
	PLUGIN_ENV="FLOWKER_AUDIT_BENCH_DELIVERY_EVENTS=5000 " SQLITE_WRITE_TIME=3x
else
	PROXY_FLAGS="-concurrency 32,64 -rounds 3 -warmup 3s -duration 10s -rate 1000 -profile-seconds 5"
	PROXY_ST_FLAGS="-concurrency 32 -rounds 1 -warmup 3s -duration 10s -rate 0"
	INTENTS_ROUNDS=3 INTENTS_FLAGS="-methods POST -concurrency 32,64 -rounds 1 -warmup 2s -duration 8s -rate 1000"
	JOURNAL_TIME=2s VERIFY_FLAGS="-benchtime 1s -count 5" WRITE_TIME=3s DELIVERY_TIME=10x
	PLUGIN_ENV="" SQLITE_WRITE_TIME=20x
fi

# 1. Proxy.
section proxy "$GO run ./internal/loadtest/cmd/proxybench -bin $BIN $PROXY_FLAGS -profile $REL/proxy-profile.pprof -workdir $REL/proxy-work -out $REL/proxy.json"
if selected proxy; then
	rm -rf "$RES/proxy-work/data" # the journal and SQLite files of the run; the logs stay
	if [ -s "$RES/proxy-profile.pprof" ]; then
		$GO tool pprof -top -cum -nodecount 40 "$BIN" "$RES/proxy-profile.pprof" >"$RES/proxy-profile.top" 2>/dev/null || true
	fi
fi

# 1b. Proxy with a Flowker-like upstream: the fake takes 5 ms per response (a real Flowker's
# MongoDB/PostgreSQL round trips; the recording shows 30-60 ms end to end), so throughput is bound
# by latency and concurrency rather than by the two shared cores.
section proxy-service-time "$GO run ./internal/loadtest/cmd/proxybench -bin $BIN $PROXY_ST_FLAGS -fake-latency 5ms -workdir $REL/proxy-service-time-work -out $REL/proxy-service-time.json"
if selected proxy-service-time; then
	rm -rf "$RES/proxy-service-time-work/data"
fi

# 1c. Write-ahead intents: the design before them against this checkout, alternately.
INTENTS_BASE=${BENCH_INTENTS_BASE:-004259c}
INTENTS="BENCH_INTENTS_BASE=$INTENTS_BASE scripts/bench-intents.sh $REL $INTENTS_ROUNDS $INTENTS_FLAGS"
if git cat-file -e "$INTENTS_BASE^{commit}" 2>/dev/null; then
	selected proxy-intents && rm -f "$RES"/proxy-intents-*.json
	section proxy-intents "$INTENTS"
else
	skip proxy-intents "$INTENTS" "commit $INTENTS_BASE (the design before intents) is not in this repository's history (a shallow clone?)"
fi

# 2. Journal.
section journal "$GO test -run '^\$' -bench 'BenchmarkAppend|BenchmarkFdatasync4KiB' -benchtime $JOURNAL_TIME ./chain/journal/"

# 3. Verify.
section verify "$GO test -run '^\$' -bench 'BenchmarkVerify1KiB|BenchmarkSHA256Raw1KiB' $VERIFY_FLAGS ./chain/"

# 4. Plugin boundary.
section nullsink-write "$GO test -run '^\$' -bench WriteNullsink -benchtime $WRITE_TIME ./sink/"
section nullsink-delivery "$GO test -run '^\$' -bench DeliveryNullsink -benchtime $DELIVERY_TIME ./sink/host/"
section plugin-delivery "${PLUGIN_ENV}FLOWKER_AUDIT_BIN=$BIN $GO test -run '^\$' -bench DeliveryPlugin -benchtime 1x -timeout 30m ./internal/loadtest/"
section sqlite-write "$GO test -run '^\$' -bench 'BenchmarkWrite\$' -benchtime $SQLITE_WRITE_TIME ./plugins/sqlite/"

# 5. SQLite search at 1M events (its size is fixed by the benchmark).
SQLITE_SEARCH="$GO test -v -run '^\$' -bench BenchmarkSearch1M -benchtime 500x -timeout 30m ./plugins/sqlite/"
if [ "$QUICK" = 1 ]; then
	skip sqlite-search "$SQLITE_SEARCH" "BENCH_QUICK=1 (the benchmark's size is fixed at 1,000,000 events; it takes minutes)"
else
	section sqlite-search "$SQLITE_SEARCH"
fi

# 6. ClickHouse.
CH_ENV="FLOWKER_AUDIT_BENCH_EVENTS=$CH_ROWS"
# A small data set must still span several days, or the one-day query finds nothing.
[ "$QUICK" = 1 ] && CH_ENV="$CH_ENV FLOWKER_AUDIT_BENCH_GAP=${FLOWKER_AUDIT_BENCH_GAP:-30s}"
CH="$CH_ENV $GO test -v -run '^\$' -bench . -benchtime 1x -timeout 0 ./plugins/clickhouse/"
if grep -qs 'func BenchmarkIngest' plugins/clickhouse/*_test.go; then
	section clickhouse "$CH"
else
	skip clickhouse "$CH" "plugins/clickhouse has no BenchmarkIngest in this checkout"
fi

# 6b. The replicated cluster at scale (issue 15). Its servers keep their data under $TMPDIR, on
# two replicas by default: with the default sidecar-shaped events ~600 bytes per event and replica
# (lz4), ~360 with FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION=zstd, so 100 M events need ~120 GB on
# two replicas, ~36 GB on one with zstd; the benchmark checks the free space first and stops with
# the figure (FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS, FLOWKER_AUDIT_BENCH_CLUSTER_REPLICAS=1,
# FLOWKER_AUDIT_BENCH_CLUSTER_COMPRESSION=zstd or another TMPDIR then).
CHC_ROWS=${FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS:-100000000}
[ "$QUICK" = 1 ] && CHC_ROWS=${FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS:-40000}
CHC="FLOWKER_AUDIT_BIN=$BIN FLOWKER_AUDIT_BENCH_CLUSTER=1 FLOWKER_AUDIT_BENCH_CLUSTER_EVENTS=$CHC_ROWS $CH_ENV $GO test -v -run '^\$' -bench '^BenchmarkCluster\$' -benchtime 1x -timeout 0 ./plugins/clickhouse/"
if grep -qs 'func BenchmarkCluster' plugins/clickhouse/*_test.go; then
	section clickhouse-cluster "$CHC"
else
	skip clickhouse-cluster "$CHC" "plugins/clickhouse has no BenchmarkCluster in this checkout"
fi

# 7. The Audit Trail page's first screen.
UI="FLOWKER_AUDIT_UI_TIMING=$RES/ui-timing.txt $GO test -count 1 -v -run '^TestFirstScreenTiming\$' -timeout 15m ./proxy/ui/"
if grep -qs 'func TestFirstScreenTiming' proxy/ui/*_test.go; then
	selected ui && rm -f "$RES/ui-timing.txt"
	section ui "$UI"
else
	skip ui "$UI" "proxy/ui has no TestFirstScreenTiming in this checkout"
fi

$GO run ./internal/loadtest/cmd/benchreport -in "$RES" -out "$DOC"
echo "bench: wrote $DOC (raw outputs in $REL)"
