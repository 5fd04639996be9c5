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

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestVerifySinkAfterRetention: `flowker-audit verify` on a query sink that applied retention
// starts from the signed anchor and says so, in text and JSON; a forged anchor hiding a further
// deletion makes it exit 1.
func TestVerifySinkAfterRetention(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "audit.db")
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("version: 1\ndata_dir: %s\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    retention: 8760h\n    config: {path: %s}\n", dir, dbPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const id = "chain-v"
	evs := sinktest.GenerateChain(id, 50, sinktest.GenOptions{Seed: 21})
	s := sqlite.New(sqlite.Options{})
	raw, _ := json.Marshal(map[string]string{"path": dbPath})
	if err := s.Configure(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	a, err := checkpoint.NewSigner(key).SignAnchor(id, 20, evs[19].Hash, evs[20].Timestamp, evs[49].Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.Retain(ctx, sink.RetentionAnchor(a)); err != nil || res.Events != 20 {
		t.Fatalf("Retain = %+v, %v", res, err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runCLI(t, "verify", "--config", cfgPath, "--chain", id)
	if err != nil || !strings.Contains(out, "valid — 30 events verified") || !strings.Contains(out, "linked to the signed retention anchor of sequence 20") {
		t.Fatalf("verify: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = runCLI(t, "verify", "--config", cfgPath, "--chain", id, "--json")
	if err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	var rep verifyJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Chains) != 1 || !rep.Chains[0].Valid || rep.Chains[0].FirstSequence != 21 || rep.Chains[0].RetentionAnchorSequence != 20 || rep.Chains[0].Checked != 30 {
		t.Fatalf("report %+v", rep.Chains)
	}

	// A copy of the anchor edited to claim sequence 30, with events 21..30 deleted: exit 1.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO retention_anchors SELECT chain_id, 30, hash, cutoff_us, time_us, key_id, signature FROM retention_anchors WHERE seq = 20`,
		`DELETE FROM events WHERE seq <= 30`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err = runCLI(t, "verify", "--config", cfgPath, "--chain", id)
	if exitCode(err) != 1 || strings.Contains(strings.ToLower(out), "truncat") {
		t.Fatalf("after a forged anchor: exit %d\n%s", exitCode(err), out)
	}
}
