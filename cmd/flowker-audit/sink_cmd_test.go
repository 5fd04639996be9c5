package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
)

// sinkFixture is a data dir with a journal of n events and a SQLite store holding them all (the
// journal keeps them: no cursor was acknowledged), and the configuration naming both.
func sinkFixture(t *testing.T, n int) (cfgPath, dir string, events []chain.Event) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(dir, "journal.db"), ChainID: "cli-sink-chain", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e, err := j.Append(ctx, journal.Draft{EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), EventType: chain.WorkflowCreated,
			Action: "create", Result: chain.ResultSuccess, ResourceID: fmt.Sprintf("wf-%d", i), ResourceType: "workflow",
			Actor: chain.Actor{Type: chain.ActorAPIKey, ID: "key:test", IPAddress: "127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "audit.db")
	s := sqlite.New(sqlite.Options{})
	raw, _ := json.Marshal(map[string]string{"path": dbPath})
	if err := s.Configure(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("version: 1\ndata_dir: %s\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    config: {path: %s}\n", dir, dbPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dir, events
}

// TestSinkRepairRestoresARowBelowTheHead: a row rewritten with its own hash below the store's
// head, while the journal still holds the genuine event (a sink lagging behind keeps it there):
// status names it with both hashes, the dry run changes nothing, --apply drops the forged row and
// writes the genuine event back (the sidecar would never resend it: it is below the head).
func TestSinkRepairRestoresARowBelowTheHead(t *testing.T) {
	cfgPath, dir, events := sinkFixture(t, 6)
	forged := events[2]
	forged.ResourceID = "forged"
	forged.Seal()
	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE events SET resource_id = ?, hash = ? WHERE seq = 3`, forged.ResourceID, forged.Hash); err != nil {
		t.Fatal(err)
	}

	out, _, err := runCLI(t, "sink", "status", "--config", cfgPath)
	want := fmt.Sprintf("sequence 3: stored hash %s (event %s), the journal has %s", forged.Hash, forged.EventID, events[2].Hash)
	if exitCode(err) != exitSinkConflict || !strings.Contains(out, "sink store (sqlite, query): CONFLICT") || !strings.Contains(out, want) {
		t.Fatalf("status: exit %d\n%s", exitCode(err), out)
	}
	out, _, err = runCLI(t, "sink", "repair", "store", "--config", cfgPath)
	if exitCode(err) != exitSinkConflict || !strings.Contains(out, "write back the journal's genuine events at sequence(s) 3") || !strings.Contains(out, "dry run") {
		t.Fatalf("dry run: exit %d\n%s", exitCode(err), out)
	}
	var h string
	if err := db.QueryRow(`SELECT hash FROM events WHERE seq = 3`).Scan(&h); err != nil || h != forged.Hash {
		t.Fatalf("the dry run changed the store: %s %v", h, err)
	}
	out, _, err = runCLI(t, "sink", "repair", "store", "--config", cfgPath, "--apply")
	if err != nil || !strings.Contains(out, "dropped 1 row(s)") || !strings.Contains(out, "wrote back 1 genuine event(s)") || !strings.Contains(out, "sink store agrees with the journal") {
		t.Fatalf("repair: %v\n%s", err, out)
	}
	if err := db.QueryRow(`SELECT hash FROM events WHERE seq = 3`).Scan(&h); err != nil || h != events[2].Hash {
		t.Fatalf("sequence 3 after the repair: %s %v, want the genuine %s", h, err, events[2].Hash)
	}
	if out, _, err := runCLI(t, "verify", "--config", cfgPath, "--checkpoints", "none"); err != nil {
		t.Fatalf("verify after the repair: %v\n%s", err, out)
	}
	if out, _, err := runCLI(t, "sink", "status", "--config", cfgPath); err != nil || strings.Contains(out, "CONFLICT") {
		t.Fatalf("status after the repair: %v\n%s", err, out)
	}
}

// TestSinkCommandRefusals: usage errors, and a journal held by a running sidecar (its file lock).
func TestSinkCommandRefusals(t *testing.T) {
	cfgPath, dir, _ := sinkFixture(t, 2)
	for _, args := range [][]string{{"sink"}, {"sink", "repair"}, {"sink", "repair", "--apply"}, {"sink", "status", "extra"}} {
		if _, stderr, err := runCLI(t, append(args, "--config", cfgPath)...); exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, exitCode(err), exitUsage, stderr)
		}
	}
	if _, _, err := runCLI(t, "sink", "repair", "no-such-sink", "--config", cfgPath); exitCode(err) != exitUsage || !strings.Contains(err.Error(), `no sink named "no-such-sink"`) {
		t.Errorf("unknown sink: %v", err)
	}
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(dir, "journal.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	_, _, err = runCLI(t, "sink", "status", "--config", cfgPath)
	if exitCode(err) != exitSinkFailed || !strings.Contains(err.Error(), "the sidecar is running") {
		t.Fatalf("while the journal is held: %v", err)
	}
}

// TestSinkStatusOfAWriteOnlySink: a sink that cannot be read back (the file sink) is compared
// by its head alone; repair has nothing to do while it agrees.
func TestSinkStatusOfAWriteOnlySink(t *testing.T) {
	cfgPath, dir, _ := sinkFixture(t, 3)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "  - name: archive\n    plugin: file\n    config: {dir: %s}\n", filepath.Join(dir, "archive"))
	f.Close()
	out, _, err := runCLI(t, "sink", "status", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "sink archive (file): agrees with the journal") ||
		!strings.Contains(out, "head: none") || !strings.Contains(out, "rows: not compared") || !strings.Contains(out, "sink store (sqlite, query): agrees with the journal") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, _, err := runCLI(t, "sink", "repair", "archive", "--config", cfgPath); err != nil || !strings.Contains(out, "nothing to repair") {
		t.Fatalf("repair of an agreeing sink: %v\n%s", err, out)
	}
}
