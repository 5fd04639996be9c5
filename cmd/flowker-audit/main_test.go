package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	_, stderr, err := runCLI(t, "check-config", "--config", filepath.Join("..", "..", "config", "testdata", "three-mistakes.yaml"))
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1", exitCode(err))
	}
	for _, want := range []string{"3 problem(s)", "listen.adress: unknown key", "upstream.url: must be an absolute http(s) URL", "sinks[1].config.addr[0]:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, stderr)
		}
	}
}

func TestCheckConfigShipped(t *testing.T) {
	t.Setenv("FLOWKER_AUDIT_AUTH_API_KEYS", "")
	out, _, err := runCLI(t, "check-config", "--config", filepath.Join("..", "..", "config.yaml"))
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("shipped config: %v\n%s", err, out)
	}
}

func TestVersionUsageAndUnknown(t *testing.T) {
	if out, _, err := runCLI(t, "version"); err != nil || !strings.HasPrefix(out, "flowker-audit ") {
		t.Fatalf("version: %q %v", out, err)
	}
	if _, stderr, err := runCLI(t, "frobnicate"); exitCode(err) != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: %v %s", err, stderr)
	}
	if _, _, err := runCLI(t); exitCode(err) != 2 {
		t.Fatalf("no command: %v", err)
	}
	if _, _, err := runCLI(t, "plugin"); exitCode(err) != 2 {
		t.Fatalf("plugin without a name: %v", err)
	}
}

func TestSchemaDryRun(t *testing.T) {
	out, _, err := runCLI(t, "schema", "clickhouse", "--server-version", "18.16.1")
	if err != nil || !strings.Contains(out, "CREATE TABLE IF NOT EXISTS") || strings.Contains(out, "LowCardinality") {
		t.Fatalf("18.16 DDL: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "schema", "clickhouse", "--server-version", "26.7")
	if err != nil || !strings.Contains(out, "LowCardinality") {
		t.Fatalf("modern DDL: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "schema", "clickhouse", "--server-version", "x"); exitCode(err) != 2 {
		t.Fatalf("bad version: %v", err)
	}
	out, _, err = runCLI(t, "schema", "clickhouse", "--cluster", "audit_cluster", "--table", "trail", "--database", "logs")
	if err != nil || !strings.Contains(out, "CREATE TABLE IF NOT EXISTS logs.trail_local ON CLUSTER audit_cluster") ||
		!strings.Contains(out, "ENGINE = Distributed(audit_cluster, logs, trail_local, cityHash64(chain_id))") {
		t.Fatalf("cluster DDL: %v\n%s", err, out)
	}
}

func TestVerifyNDJSON(t *testing.T) {
	// The file sink's golden line is a one-event chain export.
	out, _, err := runCLI(t, "verify", "--source", filepath.Join("..", "..", "plugins", "file", "testdata", "event.ndjson"))
	if err != nil && exitCode(err) != 1 {
		t.Fatalf("verify: %v", err)
	}
	if !strings.Contains(out, "chain") {
		t.Fatalf("verify output: %s", out)
	}
}
