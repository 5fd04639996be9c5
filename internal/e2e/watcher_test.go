package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"

	"net/http/httptest"
)

func activeWorkflow(t *testing.T, env *testenv.Env, name string) string {
	t.Helper()
	r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": name, "nodes": []any{map[string]any{"id": "t", "type": "trigger",
		"data": map[string]any{"triggerType": "webhook", "path": "/w/" + name, "method": "POST"}}}})
	var c struct {
		WorkflowID string `json:"workflowId"`
	}
	r.JSON(t, &c)
	if r := env.Flowker("POST", "/v1/workflows/"+c.WorkflowID+"/activate", nil); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Body)
	}
	return c.WorkflowID
}

func terminalEvents(t *testing.T, env *testenv.Env, execID string) []chain.Event {
	var out []chain.Event
	for _, e := range env.AllEvents() {
		if e.ResourceID == execID && (e.EventType == chain.ExecutionCompleted || e.EventType == chain.ExecutionFailed) {
			out = append(out, e)
		}
	}
	return out
}

// TestWatcherSurvivesRestart: an execution still running when the sidecar stops gets its
// outcome recorded after the restart, exactly once, even though clients keep reading it.
func TestWatcherSurvivesRestart(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: time.Hour})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	dir := t.TempDir()
	env := testenv.StartSidecar(t, fsrv.URL, testenv.Options{DataDir: dir})
	wf := activeWorkflow(t, env, "restart")
	r := env.Flowker("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{"simulateFailure": true}}, "Idempotency-Key", "restart-1")
	var started struct {
		ExecutionID string `json:"executionId"`
	}
	r.JSON(t, &started)
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	// While the sidecar is down, the execution ends inside Flowker.
	if !fake.FinishExecution(started.ExecutionID) {
		t.Fatal("could not finish the execution")
	}
	env2 := testenv.StartSidecar(t, fsrv.URL, testenv.Options{DataDir: dir})
	testenv.Eventually(t, 30*time.Second, "the outcome after the restart", func() bool {
		env2.WaitDelivered(10 * time.Second)
		return len(terminalEvents(t, env2, started.ExecutionID)) > 0
	})
	// Clients reading the execution (status seen in passing) do not add a second outcome.
	for i := 0; i < 3; i++ {
		env2.Flowker("GET", "/v1/executions/"+started.ExecutionID, nil)
	}
	time.Sleep(300 * time.Millisecond)
	env2.WaitDelivered(10 * time.Second)
	evs := terminalEvents(t, env2, started.ExecutionID)
	if len(evs) != 1 || evs[0].EventType != chain.ExecutionFailed {
		t.Fatalf("terminal events: %+v", evs)
	}
	var meta map[string]string
	_ = json.Unmarshal(evs[0].Metadata, &meta)
	if meta["workflow.id"] != wf || meta["error"] != "FLK-0504" {
		t.Fatalf("metadata %v", meta)
	}
	if n := env2.App.Journal(); n == nil {
		t.Fatal("no journal")
	}
	ws, _ := env2.App.Journal().Watches()
	if len(ws) != 0 {
		t.Fatalf("watch list not emptied: %+v", ws)
	}
}

// TestOutcomeSeenInPassing: a client's GET of a finished execution records the outcome before
// the watcher's next poll would.
func TestOutcomeSeenInPassing(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: time.Hour})
	fsrv := httptest.NewServer(fake)
	defer fsrv.Close()
	env := testenv.StartSidecar(t, fsrv.URL, testenv.Options{Config: func(c *configT) {
		c.Watcher.Interval = configDuration(time.Hour)
		c.Watcher.MaxInterval = configDuration(time.Hour)
	}})
	wf := activeWorkflow(t, env, "passing")
	r := env.Flowker("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{}}, "Idempotency-Key", "passing-1")
	var started struct {
		ExecutionID string `json:"executionId"`
	}
	r.JSON(t, &started)
	fake.FinishExecution(started.ExecutionID)
	if r := env.Flowker("GET", "/v1/executions/"+started.ExecutionID, nil); r.Status != 200 {
		t.Fatalf("get: %d", r.Status)
	}
	testenv.Eventually(t, 20*time.Second, "the outcome seen in passing", func() bool {
		env.WaitDelivered(10 * time.Second)
		return len(terminalEvents(t, env, started.ExecutionID)) == 1
	})
	var ctx map[string]any
	_ = json.Unmarshal(terminalEvents(t, env, started.ExecutionID)[0].Context, &ctx)
	if ctx["observedVia"] != "passthrough" {
		t.Fatalf("context %v", ctx)
	}
}
