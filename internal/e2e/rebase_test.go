package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/damagetest"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// TestLostJournalDoesNotReuseSequences: with a configured chain id, a sidecar whose journal file
// was lost continues the chain after the query sink's head instead of starting again at 1.
func TestLostJournalDoesNotReuseSequences(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	dir := t.TempDir()
	opts := testenv.Options{DataDir: dir, Config: func(c *configT) { c.Chain.ID = "fixed-chain" }}
	env := testenv.StartSidecar(t, fsrv.URL, opts)
	for i := 0; i < 5; i++ {
		if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": "before"}); r.Status != 201 {
			t.Fatal(r.Status)
		}
	}
	env.WaitDelivered(30 * time.Second)
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "journal.db")); err != nil {
		t.Fatal(err)
	}
	env2 := testenv.StartSidecar(t, fsrv.URL, opts)
	if r := env2.Flowker("POST", "/v1/workflows", map[string]any{"name": "after"}); r.Status != 201 {
		t.Fatal(r.Status)
	}
	env2.WaitDelivered(30 * time.Second)
	evs := env2.AllEvents()
	if len(evs) != 6 || evs[5].Sequence != 6 || evs[5].PreviousHash != evs[4].Hash {
		t.Fatalf("after losing the journal: %d events, last sequence %d", len(evs), evs[len(evs)-1].Sequence)
	}
	var v verifyOut
	env2.Audit("/v1/audit-events/"+evs[5].EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != 6 {
		t.Fatalf("verify: %+v", v)
	}
}

// TestCutJournalTailAndShorterSinkKeepDelivering: the journal's tail is damaged (records cut at
// start) after the sink acknowledged them, and the sink itself lost its newest rows. The chain
// continues after the sink's head, the sink's cursor is set back to it, and new events reach the
// sink: nothing new is skipped or compacted unsent.
func TestCutJournalTailAndShorterSinkKeepDelivering(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	dir := t.TempDir()
	opts := testenv.Options{DataDir: dir, Config: func(c *configT) {
		c.Chain.ID = "cut-chain"
		c.Journal.CompactEvery = config.Duration(time.Hour) // keep the records, so a tail can be cut
	}}
	// The first run is the real binary, stopped with SIGKILL: a graceful stop drains the journal
	// into the sinks and compacts it (issue 16), which leaves no tail to damage.
	cfgPath := writeConfig(t, dir, fsrv.URL, freePort(t), freePort(t))
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Replace(raw, []byte("compact_every: 1s"), []byte("compact_every: 1h"), 1) // keep the records
	raw = append(raw, []byte("chain: {id: cut-chain, checkpoint_interval: 1s}\n")...)
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var proxyPort, adminPort int
	if _, err := fmt.Sscanf(string(raw[bytes.Index(raw, []byte("listen:")):]), "listen: {addr: \"127.0.0.1:%d\"}\nadmin: {addr: \"127.0.0.1:%d\"}", &proxyPort, &adminPort); err != nil {
		t.Fatalf("ports in %s: %v", cfgPath, err)
	}
	proc := startProcess(t, cfgPath, proxyPort, adminPort)
	for i := 0; i < 10; i++ {
		if r := testenv.Do(t, "POST", proc.proxy+"/v1/workflows", map[string]any{"name": "before"}, map[string]string{"X-API-Key": testenv.FlowkerKey}); r.Status != 201 {
			t.Fatal(r.Status)
		}
	}
	var evs []chain.Event
	testenv.Eventually(t, 30*time.Second, "10 events in the store", func() bool {
		var p testenv.Page
		r := testenv.Do(t, "GET", proc.proxy+"/v1/audit-events?limit=100&sortOrder=ASC", nil, map[string]string{"X-API-Key": testenv.AuditKey})
		if r.Status != 200 {
			return false
		}
		r.JSON(t, &p)
		evs = p.Items
		return len(evs) == 10
	})
	// A periodic checkpoint signs the head of sequence 10 before the kill.
	testenv.Eventually(t, 30*time.Second, "a checkpoint of sequence 10", func() bool {
		cps, err := checkpoint.ReadFile(filepath.Join(dir, "checkpoints.ndjson"))
		return err == nil && len(cps) > 0 && cps[len(cps)-1].Sequence == 10
	})
	if err := proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	// Damage the last record in the journal file (recovery cuts it: the journal ends at 9 while the
	// sink's cursor says 10) and drop 10 from the sink too.
	jpath := filepath.Join(dir, "journal.db")
	b, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if damagetest.FlipAll(b, []byte(evs[9].EventID)) == 0 {
		t.Fatal("event 10 not found in the journal file")
	}
	if err := os.WriteFile(jpath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "audit.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DELETE FROM events WHERE seq > 9`, `UPDATE chains SET event_count = 9, last_seq = 9`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	env2 := testenv.StartSidecar(t, fsrv.URL, opts)
	for i := 0; i < 3; i++ {
		if r := env2.Flowker("POST", "/v1/workflows", map[string]any{"name": "after"}); r.Status != 201 {
			t.Fatal(r.Status)
		}
	}
	env2.WaitDelivered(30 * time.Second)
	after := env2.AllEvents()
	if len(after) != 12 || after[11].Sequence != 12 || after[9].PreviousHash != after[8].Hash {
		for _, e := range after {
			t.Logf("seq %d %s prev %.8s hash %.8s", e.Sequence, e.Timestamp, e.PreviousHash, e.Hash)
		}
		t.Fatalf("after the cut: %d events in the sink, want 9 old + 3 new linked after sequence 9", len(after))
	}
	// The chain links up, but sequence 10 now holds another event than the one the sidecar
	// signed before it was killed: /verify, checking the checkpoints, says so (the first event 10 was
	// acknowledged, then lost from both the journal and the sink).
	var v verifyOut
	env2.Audit("/v1/audit-events/"+after[11].EventID+"/verify").JSON(t, &v)
	if v.IsValid || v.Reason != "checkpoint mismatch" || v.FirstInvalidID != 10 || v.TotalChecked != 9 {
		t.Fatalf("verify: %+v", v)
	}
	env2.Audit("/v1/audit-events/"+after[8].EventID+"/verify").JSON(t, &v)
	if !v.IsValid || v.TotalChecked != 9 {
		t.Fatalf("verify up to 9: %+v", v)
	}
}

// TestUnreachableSinkRefusesARebasingStart: when the journal must be checked against the sinks'
// heads (a configured chain with a new journal) and a sink cannot be asked, the start fails with
// the reason rather than risking reused sequence numbers.
func TestUnreachableSinkRefusesARebasingStart(t *testing.T) {
	bin := testenv.Binary(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Chain.ID = "fixed-chain"
	cfg.Listen.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Sinks = []config.Sink{
		{Name: "store", Plugin: "sqlite", Query: true, Config: map[string]any{"path": filepath.Join(cfg.DataDir, "audit.db")}},
		{Name: "warehouse", Plugin: "clickhouse", Config: map[string]any{"addr": []any{"127.0.0.1:1"}, "dial_timeout": "200ms"}},
	}
	_, err := app.New(context.Background(), app.Options{Config: cfg, RebaseWait: 5 * time.Second, // long enough for the SQLite plugin to start on a loaded machine
		PluginCommand: func(name string) (string, []string, error) { return bin, []string{"plugin", name}, nil }})
	if err == nil || !strings.Contains(err.Error(), `sink "warehouse" could not tell its head`) {
		t.Fatalf("start with an unreachable sink and a journal to rebase: %v", err)
	}
}
