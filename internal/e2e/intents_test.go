package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/proxy"
)

// direct calls the fake Flowker itself (a change that reached Flowker while the sidecar died
// before journaling its event).
func direct(t *testing.T, env *testenv.Env, method, path string, body any, hdr ...string) testenv.Response {
	t.Helper()
	h := map[string]string{"X-API-Key": testenv.FlowkerKey}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return testenv.Do(t, method, env.FakeURL+path, body, h)
}

type leftIntent struct {
	name   string
	intent journal.Intent
	// want
	result     string
	outcome    string
	resourceID string
}

func makeIntent(start time.Time, eventType, action, resourceType, resourceID string, det proxy.IntentDetail) journal.Intent {
	id := uuid.Must(uuid.NewV7()).String()
	detail, _ := json.Marshal(det)
	ctx, _ := json.Marshal(map[string]any{"method": det.Method, "path": det.Path, "rule": det.Rule, "requestId": id})
	return journal.Intent{ID: id, Start: start, Detail: detail, Draft: journal.Draft{EventID: id, EventType: eventType, Action: action,
		ResourceType: resourceType, ResourceID: resourceID, Actor: chain.Actor{Type: chain.ActorAPIKey, ID: "key:test", IPAddress: "127.0.0.1"},
		Context: ctx, Metadata: []byte("{}")}}
}

// TestIntentsLeftByACrashAreRecovered: requests that reached Flowker while the sidecar died
// before their event (simulated: the change is made on Flowker directly and its intent written
// into the stopped sidecar's journal) each become exactly one event at the next start, with the
// outcome learned from Flowker where its API allows, and "unknown" (never an invented result)
// where it does not. A third start records nothing more.
func TestIntentsLeftByACrashAreRecovered(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExecutionDelay: time.Hour})
	active := activeWorkflow(t, env, "rec-active")
	toActivate := createWorkflow(t, env, "rec-to-activate", true)
	toDelete := createWorkflow(t, env, "rec-to-delete", false)
	untouched := createWorkflow(t, env, "rec-untouched", false)
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the recovery's clock skew allowance
	start := time.Now()
	time.Sleep(10 * time.Millisecond)

	// Changes that reached Flowker, without events.
	var created struct {
		WorkflowID string `json:"workflowId"`
	}
	direct(t, env, "POST", "/v1/workflows", map[string]any{"name": "rec-created"}).JSON(t, &created)
	if r := direct(t, env, "POST", "/v1/workflows/"+toActivate+"/activate", nil); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Body)
	}
	if r := direct(t, env, "DELETE", "/v1/workflows/"+toDelete, nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	var exec struct {
		ExecutionID string `json:"executionId"`
	}
	direct(t, env, "POST", "/v1/workflows/"+active+"/executions", map[string]any{}, "Idempotency-Key", "rec-exec-1").JSON(t, &exec)

	wf, ex := chain.ResourceWorkflow, chain.ResourceExecution
	left := []leftIntent{
		{"create applied", makeIntent(start, chain.WorkflowCreated, chain.ActionCreate, wf, "",
			proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: "rec-created"}),
			chain.ResultSuccess, "reconciled", created.WorkflowID},
		{"create not applied", makeIntent(start, chain.WorkflowCreated, chain.ActionCreate, wf, "",
			proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: "rec-never"}),
			chain.ResultFailed, "reconciled", ""},
		{"activation applied", makeIntent(start, chain.WorkflowActivated, chain.ActionActivate, wf, toActivate,
			proxy.IntentDetail{Rule: "workflow.activate", Method: "POST", Path: "/v1/workflows/" + toActivate + "/activate", Params: map[string]string{"id": toActivate}}),
			chain.ResultSuccess, "reconciled", toActivate},
		{"activation not applied", makeIntent(start, chain.WorkflowActivated, chain.ActionActivate, wf, untouched,
			proxy.IntentDetail{Rule: "workflow.activate", Method: "POST", Path: "/v1/workflows/" + untouched + "/activate", Params: map[string]string{"id": untouched}}),
			chain.ResultFailed, "reconciled", untouched},
		{"delete applied", makeIntent(start, chain.WorkflowDeleted, chain.ActionDelete, wf, toDelete,
			proxy.IntentDetail{Rule: "workflow.delete", Method: "DELETE", Path: "/v1/workflows/" + toDelete, Params: map[string]string{"id": toDelete}}),
			chain.ResultSuccess, "reconciled", toDelete},
		{"execution started", makeIntent(start, chain.ExecutionStarted, chain.ActionExecute, ex, "",
			proxy.IntentDetail{Rule: "execution.start", Method: "POST", Path: "/v1/workflows/" + active + "/executions", Params: map[string]string{"workflowId": active}, IdempotencyKey: "rec-exec-1"}),
			chain.ResultSuccess, "reconciled", exec.ExecutionID},
		{"route Flowker cannot answer for", makeIntent(start, chain.UnclassifiedMutation, chain.ActionUnknown, chain.ResourceUnknown, "",
			proxy.IntentDetail{Rule: "unclassified", Method: "PATCH", Path: "/v1/somewhere"}),
			chain.ResultUnknown, "unknown", ""},
	}
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(env.DataDir, "journal.db")})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if err := j.Intend(context.Background(), l.intent); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	env2 := testenv.StartSidecar(t, env.FakeURL, testenv.Options{DataDir: env.DataDir})
	env2.Fake, env2.FakeURL = env.Fake, env.FakeURL
	testenv.Eventually(t, 30*time.Second, "every intent resolved", func() bool { return env2.App.Journal().Pending() == 0 })
	env2.WaitDelivered(10 * time.Second)
	checkRecoveredIntents(t, env2, left)
	rec := counter(t, env2, "flowker_audit_intents_recovered_total", "outcome", "reconciled")
	unk := counter(t, env2, "flowker_audit_intents_recovered_total", "outcome", "unknown")
	if rec != 6 || unk != 1 {
		t.Fatalf("intents_recovered_total reconciled %v unknown %v", rec, unk)
	}
	// The recovered execution is watched: its outcome follows once Flowker finishes it.
	if !env2.Fake.FinishExecution(exec.ExecutionID) {
		t.Fatal("could not finish the execution")
	}
	testenv.Eventually(t, 30*time.Second, "the recovered execution's outcome", func() bool {
		env2.WaitDelivered(10 * time.Second)
		return len(terminalEvents(t, env2, exec.ExecutionID)) == 1
	})
	n := len(env2.AllEvents())
	if err := env2.Stop(); err != nil {
		t.Fatal(err)
	}

	// Each intent resolves once: a further start records nothing.
	env3 := testenv.StartSidecar(t, env.FakeURL, testenv.Options{DataDir: env.DataDir})
	time.Sleep(300 * time.Millisecond)
	env3.WaitDelivered(10 * time.Second)
	if got := len(env3.AllEvents()); got != n {
		t.Fatalf("%d events after another start, want %d", got, n)
	}
}

func createWorkflow(t *testing.T, env *testenv.Env, name string, activatable bool) string {
	t.Helper()
	body := map[string]any{"name": name}
	if activatable {
		body["nodes"] = []any{map[string]any{"id": "t", "type": "trigger",
			"data": map[string]any{"triggerType": "webhook", "path": "/w/" + name, "method": "POST"}}}
	}
	r := env.Flowker("POST", "/v1/workflows", body)
	var c struct {
		WorkflowID string `json:"workflowId"`
	}
	r.JSON(t, &c)
	if c.WorkflowID == "" {
		t.Fatalf("create %s: %d %s", name, r.Status, r.Body)
	}
	return c.WorkflowID
}

// counter reads a counter (or gauge) with one label from the sidecar's registry (0: absent).
func counter(t *testing.T, env *testenv.Env, name, label, value string) float64 {
	t.Helper()
	mfs, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if label == "" || l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
			if label == "" {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// checkRecoveredIntents checks that each intent left behind became one event with the expected
// result, outcome and resource, and that an outcome carries its evidence (reconciled) or its
// reason (unknown).
func checkRecoveredIntents(t *testing.T, env *testenv.Env, left []leftIntent) {
	t.Helper()
	byID := map[string]chain.Event{}
	for _, e := range env.AllEvents() {
		byID[e.EventID] = e
	}
	for _, l := range left {
		t.Run(l.name, func(t *testing.T) {
			e, ok := byID[l.intent.ID]
			if !ok {
				t.Fatal("no event")
			}
			var ctx struct {
				Outcome  string `json:"outcome"`
				Evidence string `json:"outcomeEvidence"`
				Reason   string `json:"outcomeReason"`
			}
			_ = json.Unmarshal(e.Context, &ctx)
			if e.Result != l.result || ctx.Outcome != l.outcome || e.ResourceID != l.resourceID {
				t.Fatalf("result %s outcome %s resource %q (want %s %s %q); context %s", e.Result, ctx.Outcome, e.ResourceID,
					l.result, l.outcome, l.resourceID, e.Context)
			}
			if (ctx.Outcome == "reconciled") != (ctx.Evidence != "") || (ctx.Outcome == "unknown") != (ctx.Reason != "") {
				t.Fatalf("evidence %q reason %q", ctx.Evidence, ctx.Reason)
			}
			t.Logf("%s: %s%s", e.Result, ctx.Evidence, ctx.Reason)
		})
	}
}
