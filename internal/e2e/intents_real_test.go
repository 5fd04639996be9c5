package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/proxy"
)

// TestIntentsRecoveredAgainstTheRealFlowker is TestIntentsLeftByACrashAreRecovered against a
// running real Flowker (opt-in: REAL_FLOWKER_URL, its API key in
// REAL_FLOWKER_KEY; docs/FLOWKER-BEHAVIOUR.md says how to run one). Changes are
// made on Flowker directly, as if the sidecar had died before their events; their intents are
// left in the stopped sidecar's journal, and the sidecar binary, started again, must turn each
// into one event with the outcome Flowker shows.
func TestIntentsRecoveredAgainstTheRealFlowker(t *testing.T) {
	base := strings.TrimRight(os.Getenv("REAL_FLOWKER_URL"), "/")
	if base == "" {
		t.Skip("set REAL_FLOWKER_URL (and REAL_FLOWKER_KEY) to a running real Flowker to run this test (docs/FLOWKER-BEHAVIOUR.md)")
	}
	key := os.Getenv("REAL_FLOWKER_KEY")
	opts := testenv.Options{Config: func(c *config.Config) { c.Watcher.APIKey = key }}
	call := func(method, path string, body any, hdr ...string) testenv.Response {
		t.Helper()
		h := map[string]string{"X-API-Key": key}
		for i := 0; i+1 < len(hdr); i += 2 {
			h[hdr[i]] = hdr[i+1]
		}
		return testenv.Do(t, method, base+path, body, h)
	}
	must := func(status int, method, path string, body any, hdr ...string) map[string]any {
		t.Helper()
		r := call(method, path, body, hdr...)
		if r.Status != status {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		var m map[string]any
		_ = json.Unmarshal(r.Body, &m)
		return m
	}
	run := uuid.NewString()[:8]
	name := func(s string) string { return "e2e-real-" + run + "-" + s }
	workflow := func(n string) string {
		return must(201, "POST", "/v1/workflows", map[string]any{"name": name(n), "nodes": []any{map[string]any{"id": "t", "type": "trigger",
			"position": map[string]any{"x": 0, "y": 0}, "data": map[string]any{"triggerType": "webhook", "path": "/" + name(n), "method": "POST"}}}})["workflowId"].(string)
	}

	env := testenv.StartSidecar(t, base, opts)
	toActivate, toDelete, untouched := workflow("to-activate"), workflow("to-delete"), workflow("untouched")
	runner, hooked := workflow("runner"), workflow("hooked")
	must(200, "POST", "/v1/workflows/"+runner+"/activate", nil)
	must(200, "POST", "/v1/workflows/"+hooked+"/activate", nil)
	pc := must(201, "POST", "/v1/provider-configurations", map[string]any{"name": name("pc"), "providerId": "tracer",
		"config": map[string]any{"base_url": "http://127.0.0.1:9/t", "api_key": "k"}})["id"].(string)
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the recovery's clock allowance
	start := time.Now()
	time.Sleep(10 * time.Millisecond)

	created := must(201, "POST", "/v1/workflows", map[string]any{"name": name("created")})["workflowId"].(string)
	must(200, "POST", "/v1/workflows/"+toActivate+"/activate", nil)
	must(204, "DELETE", "/v1/workflows/"+toDelete, nil)
	must(200, "POST", "/v1/provider-configurations/"+pc+"/disable", nil)
	started := must(201, "POST", "/v1/workflows/"+runner+"/executions", map[string]any{"inputData": map[string]any{}}, "Idempotency-Key", name("run"))["executionId"].(string)
	hookedRun := must(201, "POST", "/v1/webhooks/"+name("hooked"), map[string]any{"n": 1})["executionId"].(string)

	wf, ex, pcType := chain.ResourceWorkflow, chain.ResourceExecution, chain.ResourceProviderConfig
	id := func(v string) map[string]string { return map[string]string{"id": v} }
	left := []leftIntent{
		{"create applied", makeIntent(start, chain.WorkflowCreated, chain.ActionCreate, wf, "",
			proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: name("created")}), chain.ResultSuccess, "reconciled", created},
		{"create not applied", makeIntent(start, chain.WorkflowCreated, chain.ActionCreate, wf, "",
			proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: name("never")}), chain.ResultFailed, "reconciled", ""},
		{"activation applied", makeIntent(start, chain.WorkflowActivated, chain.ActionActivate, wf, toActivate,
			proxy.IntentDetail{Rule: "workflow.activate", Method: "POST", Path: "/v1/workflows/" + toActivate + "/activate", Params: id(toActivate)}),
			chain.ResultSuccess, "reconciled", toActivate},
		{"activation not applied", makeIntent(start, chain.WorkflowActivated, chain.ActionActivate, wf, untouched,
			proxy.IntentDetail{Rule: "workflow.activate", Method: "POST", Path: "/v1/workflows/" + untouched + "/activate", Params: id(untouched)}),
			chain.ResultFailed, "reconciled", untouched},
		{"delete applied", makeIntent(start, chain.WorkflowDeleted, chain.ActionDelete, wf, toDelete,
			proxy.IntentDetail{Rule: "workflow.delete", Method: "DELETE", Path: "/v1/workflows/" + toDelete, Params: id(toDelete)}),
			chain.ResultSuccess, "reconciled", toDelete},
		{"provider config disable applied", makeIntent(start, chain.ProviderConfigUpdated, chain.ActionUpdate, pcType, pc,
			proxy.IntentDetail{Rule: "provider_config.disable", Method: "POST", Path: "/v1/provider-configurations/" + pc + "/disable", Params: id(pc)}),
			chain.ResultSuccess, "reconciled", pc},
		{"execution started (by key)", makeIntent(start, chain.ExecutionStarted, chain.ActionExecute, ex, "",
			proxy.IntentDetail{Rule: "execution.start", Method: "POST", Path: "/v1/workflows/" + runner + "/executions",
				Params: map[string]string{"workflowId": runner}, IdempotencyKey: name("run")}), chain.ResultSuccess, "reconciled", started},
		{"webhook without a key", makeIntent(start, chain.ExecutionStarted, chain.ActionExecute, ex, "",
			proxy.IntentDetail{Rule: "webhook.trigger", Method: "POST", Path: "/v1/webhooks/" + name("hooked")}), chain.ResultSuccess, "reconciled", hookedRun},
		{"unclassified", makeIntent(start, chain.UnclassifiedMutation, chain.ActionUnknown, chain.ResourceUnknown, "",
			proxy.IntentDetail{Rule: "unclassified", Method: "PATCH", Path: "/v1/somewhere"}), chain.ResultUnknown, "unknown", ""},
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

	opts.DataDir = env.DataDir
	env2 := testenv.StartSidecar(t, base, opts)
	testenv.Eventually(t, 60*time.Second, "every intent resolved", func() bool { return env2.App.Journal().Pending() == 0 })
	env2.WaitDelivered(10 * time.Second)
	checkRecoveredIntents(t, env2, left)
	// The recovered executions are watched: their outcomes follow (a trigger-only workflow
	// completes at once on the real Flowker).
	for _, x := range []string{started, hookedRun} {
		testenv.Eventually(t, 60*time.Second, "the recovered execution's outcome", func() bool {
			env2.WaitDelivered(10 * time.Second)
			return len(terminalEvents(t, env2, x)) == 1
		})
	}
}
