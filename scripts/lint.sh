#!/usr/bin/env bash
# make lint: go vet, gofmt, staticcheck and deadcode, at pinned versions run with `go run` (the
# Go module proxy serves them; nothing is installed). Part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE=golang.org/x/tools/cmd/deadcode@v0.52.0

echo "lint: go vet"
go vet ./...

echo "lint: gofmt"
out=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$out" ]; then
	echo "gofmt needed:"; echo "$out"; exit 1
fi

echo "lint: staticcheck ($STATICCHECK)"
go run "$STATICCHECK" ./...

# deadcode lists functions that no command of the module reaches. Packages that exist for tests
# (harnesses and kits whose names say so) are reached from tests only, by design; anything else it
# lists is dead code or test-only code in a production file, and fails the lint. A public SDK
# function that no command calls may stand in deadcode-allow.txt with its reason.
echo "lint: deadcode ($DEADCODE)"
allow=$(grep -v '^\s*#' scripts/deadcode-allow.txt | awk 'NF {print $1}' | paste -sd'|')
dead=$(go run "$DEADCODE" ./... | grep -Ev "^(${allow})" || true)
if [ -n "$dead" ]; then
	echo "unreachable from every command (delete it, or move test-only code into a _test.go file or a test-support package):"
	echo "$dead"
	exit 1
fi
echo "lint: ok"
