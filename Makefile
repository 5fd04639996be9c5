# flowker-audit — the two commands a newcomer needs:
#   make demo   fake Flowker + the sidecar, with URLs and curl lines to try
#   make test   every test (unit, integration, race detector) with real ClickHouse and Chromium
#
# Other targets: run (the sidecar on config.yaml), build, bench, crash-long, lint, generate, deps, clean.

GO      ?= go
BIN     := bin/flowker-audit
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Tests run under the race detector; CI machines have 2 cores.
TESTFLAGS ?= -race -timeout 25m

.PHONY: all build run demo test deps lint bench crash-long generate clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/flowker-audit

# The sidecar on the shipped config.yaml (SQLite under ./data, Flowker on 127.0.0.1:4021).
run: build
	./$(BIN) serve --config config.yaml

# Fake Flowker on 127.0.0.1:4021 + the sidecar on :4020, with demo keys; Ctrl-C stops both.
demo: build
	./scripts/demo.sh ./$(BIN)

# Installs what the tests need when missing (Debian packages as root, chdb from npm).
deps:
	./scripts/test-deps.sh

# The suite must not depend on the machine's language, locale or time zone: it runs with LANG
# unset and an unusual time zone (UTC+12:45/+13:45), then the browser tests run again under a
# second language and zone (the browser itself is pinned through the DevTools protocol).
BROWSER_PKGS := ./proxy/ui/... ./internal/e2e/browser/...

test: deps lint
	env -u LANG -u LC_ALL -u LANGUAGE TZ=Pacific/Chatham $(GO) test $(TESTFLAGS) ./...
	env LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8 TZ=Asia/Kathmandu $(GO) test $(TESTFLAGS) -count=1 $(BROWSER_PKGS)

# go vet, gofmt, staticcheck and deadcode (pinned versions through go run; see scripts/lint.sh).
lint:
	./scripts/lint.sh

# Benchmarks (not tests): measures and rewrites docs/BENCHMARKS.md.
bench: deps build
	./scripts/bench.sh

# The SIGKILL crash tests at length: 25 kills of the real sidecar under mixed writes (make test
# runs 3), the full-disk test (root: it mounts a tmpfs) and a kill during recovery.
crash-long: deps
	FLOWKER_AUDIT_CRASH_ROUNDS=$${FLOWKER_AUDIT_CRASH_ROUNDS:-25} $(GO) test $(TESTFLAGS) -count=1 -v \
		-run '^(TestKill9WithIntentsLeavesNoChangeWithoutEvent|TestDiskFullLeavesNoChangeWithoutEvent|TestKill9DuringRecovery)$$' ./internal/e2e/

# Regenerates the sink protocol's Go code (needs protoc: apt-get install protobuf-compiler).
generate:
	$(GO) generate ./sink/...

clean:
	rm -rf bin
