package e2e

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/fakeflowker"
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
