#!/usr/bin/env bash
# The proxy-intents section of make bench (scripts/bench.sh): audited writes through the sidecar
# of the design before write-ahead intents (commit BASE, default 004259c: journal split, no
# intents) against this checkout, the same proxybench command alternately on both binaries.
#
# Usage: scripts/bench-intents.sh OUTDIR ROUNDS PROXYBENCH-FLAGS...
# Writes OUTDIR/proxy-intents-{before,after}-N.json (N = 1..ROUNDS) and prints one line per run
# with the load average. Both binaries are built here the same way (CGO_ENABLED=0, -trimpath):
# the baseline from `git archive BASE` in a temporary directory. Exits 3 when BASE is not in
# the history (bench.sh checks that first and records the section as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

out=$1 rounds=$2
shift 2
GO=${GO:-go}
BASE=${BENCH_INTENTS_BASE:-004259c}

if ! git cat-file -e "$BASE^{commit}" 2>/dev/null; then
	echo "commit $BASE (the design before intents) is not in this repository's history" >&2
	exit 3
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "building before = $BASE ($(git log -1 --format='%h %s' "$BASE" | cut -c1-100))"
mkdir "$tmp/src"
git archive "$BASE" | tar -x -C "$tmp/src"
(cd "$tmp/src" && CGO_ENABLED=0 $GO build -trimpath -o "$tmp/before" ./cmd/flowker-audit)
echo "building after = $(git describe --always --dirty 2>/dev/null || echo 'this checkout')"
CGO_ENABLED=0 $GO build -trimpath -o "$tmp/after" ./cmd/flowker-audit
$GO build -o "$tmp/proxybench" ./internal/loadtest/cmd/proxybench

for i in $(seq 1 "$rounds"); do
	order="before after"
	[ $((i % 2)) = 0 ] && order="after before" # alternate which build goes first
	for v in $order; do
		echo "round $i $v: start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
		work="$tmp/work-$v-$i"
		if ! "$tmp/proxybench" -bin "$tmp/$v" "$@" -workdir "$work" -out "$out/proxy-intents-$v-$i.json" >"$tmp/run.log" 2>&1; then
			tail -20 "$tmp/run.log"
			echo "round $i $v: proxybench failed" >&2
			exit 1
		fi
		echo "round $i $v: done $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
		rm -rf "$work"
	done
done
