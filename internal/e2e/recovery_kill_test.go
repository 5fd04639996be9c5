package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/proxy"
)

// TestKill9DuringRecovery: the sidecar process is killed with SIGKILL while it is turning the
// intents of an earlier crash into events; after the restart every intent has exactly one event
// (those recovered before the kill are not recovered again, the others are).
func TestKill9DuringRecovery(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, Latency: 5 * time.Millisecond})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	dir := t.TempDir()
	start := time.Now()
	time.Sleep(10 * time.Millisecond)

	// 150 creates that reached Flowker and 50 that did not, all without events.
	const applied, notApplied = 150, 50
	want := map[string]string{} // intent id -> resource id ("" when not created)
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(dir, "journal.db")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range applied + notApplied {
		name := fmt.Sprintf("recovering-%d", i)
		id := ""
		if i < applied {
			r := testenv.Do(t, "POST", fsrv.URL+"/v1/workflows", map[string]any{"name": name}, map[string]string{"X-API-Key": testenv.FlowkerKey})
			var c struct {
				WorkflowID string `json:"workflowId"`
			}
			r.JSON(t, &c)
			id = c.WorkflowID
		}
		in := makeIntent(start, chain.WorkflowCreated, chain.ActionCreate, chain.ResourceWorkflow, "",
			proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: name})
		if err := j.Intend(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		want[in.ID] = id
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	pp, ap := freePort(t), freePort(t)
	cfg := writeCrashConfig(t, dir, fsrv.URL, pp, ap, "")
	proc := startProcess(t, cfg, pp, ap)
	const line = "event recovered from an intent"
	testenv.Eventually(t, 60*time.Second, "recovery under way", func() bool { return strings.Count(proc.stderr.String(), line) >= 20 })
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	first := strings.Count(proc.stderr.String(), line)
	if first >= applied+notApplied {
		t.Fatalf("recovery finished (%d) before the kill: the test did not kill it during recovery", first)
	}

	proc = startProcess(t, cfg, pp, ap)
	testenv.Eventually(t, 60*time.Second, "recovery done after the restart", func() bool {
		return strings.Contains(proc.stderr.String(), "intent recovery done")
	})
	second := strings.Count(proc.stderr.String(), line)
	env := &testenv.Env{ProxyURL: proc.proxy}
	var events []chain.Event
	testenv.Eventually(t, 30*time.Second, "every recovered event in the trail", func() bool {
		events = allEvents(t, env)
		return len(events) >= len(want)
	})
	got := map[string]int{}
	for _, e := range events {
		got[e.EventID]++
		w, ok := want[e.EventID]
		if !ok {
			t.Errorf("unexpected event %s", e.EventID)
			continue
		}
		switch {
		case w != "" && (e.Result != chain.ResultSuccess || e.ResourceID != w):
			t.Errorf("event %s: %s %q, want SUCCESS %q", e.EventID, e.Result, e.ResourceID, w)
		case w == "" && e.Result != chain.ResultFailed:
			t.Errorf("event %s: %s, want FAILED (not created)", e.EventID, e.Result)
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("intent %s has %d events", id, got[id])
		}
	}
	// (A kill between an append and its log line makes first one short: exactly one event per
	// intent, checked above, is the proof; this only shows the restart did not start over.)
	if second > len(want)-first {
		t.Errorf("recovered %d before the kill and %d after, of %d", first, second, len(want))
	}
	t.Logf("killed after %d of %d intents were recovered; the restart recovered the other %d", first, len(want), second)
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
}
