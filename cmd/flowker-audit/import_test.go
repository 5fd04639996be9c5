package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/pgtest"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
)

// TestMain lets the test binary serve the bundled plugins, as the flowker-audit binary does
// ("flowker-audit plugin NAME"), so the CLI's commands can start them.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := pluginCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestImportFlowkerCommand runs `flowker-audit import flowker` against a real PostgreSQL 15 with
// Flowker's migration, into the SQLite sink of a configuration, twice.
func TestImportFlowkerCommand(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE flowker"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	conn, err := pgx.Connect(ctx, srv.URL("flowker"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	migration, err := os.ReadFile(filepath.Join("..", "..", "internal", "flowkerimport", "testdata", "000001_audit_events.up.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(migration)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 30; i++ {
		if _, err := conn.Exec(ctx, `INSERT INTO audit_events (event_id, event_type, action, result, resource_id, resource_type, actor_type, actor_id, context, metadata)
			VALUES ($1, 'WORKFLOW_CREATED', 'CREATE', 'SUCCESS', $2, 'workflow', 'system', 'flowker', '{}', $3::jsonb)`,
			fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), fmt.Sprintf("%08d-1111-4111-8111-111111111111", i), fmt.Sprintf(`{"workflow.name": "flow %d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "audit.db")
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("version: 1\ndata_dir: %s\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    config: {path: %s}\n", dir, dbPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for run, want := range []string{"chain flowker-native: 30 rows read after sequence 0, now 30 events in 1 sink(s); 0 row(s)",
		"chain flowker-native: 0 rows read after sequence 30, now 30 events in 1 sink(s); 0 row(s)"} {
		t.Setenv("FLOWKER_AUDIT_IMPORT_POSTGRES_URL", srv.URL("flowker"))
		out, errOut, err := runCLI(t, "import", "flowker", "--config", cfgPath)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("run %d: %v\n%s\n%s", run+1, err, out, errOut)
		}
	}
	s := sqlite.New(sqlite.Options{})
	raw, _ := json.Marshal(map[string]string{"path": dbPath})
	if err := s.Configure(ctx, raw); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var n int
	err = s.ReadChain(ctx, "flowker-native", 1, 0, func(e *chain.Event) error {
		n++
		if h, err := e.FlowkerHash(); err != nil || h != e.Hash {
			return fmt.Errorf("sequence %d does not verify: %v", e.Sequence, err)
		}
		return nil
	})
	if err != nil || n != 30 {
		t.Fatalf("%v, %d events", err, n)
	}
	if _, err := s.Head(ctx, "flowker-native"); err != nil {
		t.Fatal(err)
	}
	var _ sink.Querier = s
	// Without a URL: usage error.
	t.Setenv("FLOWKER_AUDIT_IMPORT_POSTGRES_URL", "")
	if _, _, err := runCLI(t, "import", "flowker", "--config", cfgPath); exitCode(err) != 2 {
		t.Fatalf("no URL: %v", err)
	}
}
