// Package e2e holds end-to-end tests: the fake Flowker, the sidecar with real plugin processes,
// and the audit API, driven over HTTP.
package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// expect is one event the scenario must produce, in order.
type expect struct {
	eventType, result, resourceID string
	meta                          map[string]string
}

// caller sends requests to a base URL with the Flowker key.
type caller struct {
	t    *testing.T
	base string
}

func (c caller) do(method, path string, body any, hdr ...string) testenv.Response {
	c.t.Helper()
	h := map[string]string{"X-API-Key": testenv.FlowkerKey}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return testenv.Do(c.t, method, c.base+path, body, h)
}

func (c caller) want(r testenv.Response, status int) testenv.Response {
	c.t.Helper()
	if r.Status != status {
		c.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

func field(t *testing.T, r testenv.Response, name string) string {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	s, _ := m[name].(string)
	if s == "" {
		t.Fatalf("no %q in %s", name, r.Body)
	}
	return s
}

// scenario exercises every mutating route of Flowker, successes and failures, and returns the
// events a complete audit trail must contain (synchronous ones in order) plus the executions
// whose terminal events must follow.
func scenario(t *testing.T, c caller) (events []expect, outcomes map[string]string) {
	S, F := chain.ResultSuccess, chain.ResultFailed
	ev := func(typ, res, id string, meta ...string) {
		m := map[string]string{}
		for i := 0; i+1 < len(meta); i += 2 {
			m[meta[i]] = meta[i+1]
		}
		events = append(events, expect{typ, res, id, m})
	}
	outcomes = map[string]string{}
	suffix := fmt.Sprint(time.Now().UnixNano())

	// Provider configurations.
	pc1 := field(t, c.want(c.do("POST", "/v1/provider-configurations", map[string]any{"name": "tracer-" + suffix, "providerId": "tracer",
		"config": map[string]any{"base_url": "https://tracer.example", "api_key": "pc-secret-123456"}}), 201), "id")
	ev(chain.ProviderConfigCreated, S, pc1, "provider_config.name", "tracer-"+suffix, "provider_config.provider_id", "tracer")
	c.want(c.do("POST", "/v1/provider-configurations", map[string]any{"name": "bad", "providerId": "nope", "config": map[string]any{}}), 404)
	ev(chain.ProviderConfigCreated, F, "")
	c.want(c.do("PATCH", "/v1/provider-configurations/"+pc1, map[string]any{"name": "tracer2-" + suffix}), 200)
	ev(chain.ProviderConfigUpdated, S, pc1, "provider_config.name", "tracer2-"+suffix)
	c.want(c.do("PATCH", "/v1/provider-configurations/"+pc1, `{"name": "half`), 400)
	ev(chain.ProviderConfigUpdated, F, pc1)
	c.want(c.do("POST", "/v1/provider-configurations/"+pc1+"/disable", nil), 200)
	ev(chain.ProviderConfigUpdated, S, pc1, "provider_config.status", "disabled")
	c.want(c.do("POST", "/v1/provider-configurations/"+pc1+"/disable", nil), 422)
	ev(chain.ProviderConfigUpdated, F, pc1)
	c.want(c.do("POST", "/v1/provider-configurations/"+pc1+"/enable", nil), 200)
	ev(chain.ProviderConfigUpdated, S, pc1, "provider_config.status", "active")
	c.want(c.do("POST", "/v1/provider-configurations/"+pc1+"/test", nil), 200) // changes nothing: no event
	pc2 := field(t, c.want(c.do("POST", "/v1/provider-configurations", map[string]any{"name": "midaz-" + suffix, "providerId": "midaz",
		"config": map[string]any{"onboarding_base_url": "https://m.example/o", "transaction_base_url": "https://m.example/t",
			"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870"}}), 201), "id")
	ev(chain.ProviderConfigCreated, S, pc2)

	// Workflows.
	hook := "/e2e/" + suffix
	wfBody := map[string]any{"name": "wf-" + suffix, "nodes": []any{map[string]any{"id": "hook", "type": "trigger",
		"data": map[string]any{"triggerType": "webhook", "path": hook, "method": "POST"}}}}
	wf := field(t, c.want(c.do("POST", "/v1/workflows", wfBody), 201), "workflowId")
	ev(chain.WorkflowCreated, S, wf, "workflow.name", "wf-"+suffix)
	c.want(c.do("POST", "/v1/workflows", `{"name":"plain"}`, "Content-Type", "text/plain"), 400)
	ev(chain.WorkflowCreated, F, "")
	wfBody["name"] = "wf2-" + suffix
	c.want(c.do("PUT", "/v1/workflows/"+strings.ToUpper(wf), wfBody), 200)
	ev(chain.WorkflowUpdated, S, wf, "workflow.name", "wf2-"+suffix)
	c.want(c.do("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{}}, "Idempotency-Key", "draft-"+suffix), 422)
	ev(chain.ExecutionStarted, F, "")
	c.want(c.do("POST", "/V1/Workflows/"+wf+"/Activate/", nil), 200)
	ev(chain.WorkflowActivated, S, wf, "workflow.name", "wf2-"+suffix)
	c.want(c.do("PUT", "/v1/workflows/"+wf, wfBody), 422)
	ev(chain.WorkflowUpdated, F, wf)

	// Executions: manual, replayed, rejected, by webhook, failing.
	e1 := field(t, c.want(c.do("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{"amount": 1}}, "Idempotency-Key", "k1-"+suffix), 201), "executionId")
	ev(chain.ExecutionStarted, S, e1, "workflow.id", wf)
	outcomes[e1] = chain.ExecutionCompleted
	r := c.do("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{"amount": 2}}, "Idempotency-Key", "k1-"+suffix)
	if (r.Status != 201 && r.Status != 200) || field(t, r, "executionId") != e1 {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	c.want(c.do("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{}}), 400) // no Idempotency-Key
	ev(chain.ExecutionStarted, F, "")
	e2 := field(t, c.want(c.do("POST", "/v1/webhooks"+hook, map[string]any{"payout": 7}, "Idempotency-Key", "hook-"+suffix), 201), "executionId")
	ev(chain.ExecutionStarted, S, e2, "workflow.id", wf)
	outcomes[e2] = chain.ExecutionCompleted
	c.want(c.do("POST", "/v1/webhooks/e2e/no-such-hook", map[string]any{}), 404)
	ev(chain.ExecutionStarted, F, "")
	e3 := field(t, c.want(c.do("POST", "/v1/workflows/"+wf+"/executions", map[string]any{"inputData": map[string]any{"simulateFailure": true}}, "Idempotency-Key", "k3-"+suffix), 201), "executionId")
	ev(chain.ExecutionStarted, S, e3, "workflow.id", wf)
	outcomes[e3] = chain.ExecutionFailed

	// Clone, from-template, status machine, deletes.
	clone := field(t, c.want(c.do("POST", "/v1/workflows/"+wf+"/clone", map[string]any{"name": "clone-" + suffix}), 201), "workflowId")
	ev(chain.WorkflowCreated, S, clone, "workflow.name", "clone-"+suffix, "workflow.cloned_from", wf)
	c.want(c.do("POST", "/v1/workflows/"+fakeNil+"/clone", map[string]any{"name": "x"}), 404)
	ev(chain.WorkflowCreated, F, "")
	tpl := field(t, c.want(c.do("POST", "/v1/workflows/from-template", map[string]any{"templateId": "tracer-midaz-validation",
		"params": map[string]any{"workflowName": "tpl-" + suffix, "tracerProviderConfigId": pc1, "midazProviderConfigId": pc2, "webhookPath": "/tpl/" + suffix}}), 201), "workflowId")
	ev(chain.WorkflowCreated, S, tpl, "workflow.name", "tpl-"+suffix)
	c.want(c.do("POST", "/v1/workflows/"+wf+"/deactivate", nil), 200)
	ev(chain.WorkflowDeactivated, S, wf, "workflow.name", "wf2-"+suffix)
	c.want(c.do("POST", "/v1/workflows/"+wf+"/activate", nil), 422)
	ev(chain.WorkflowActivated, F, wf)
	c.want(c.do("POST", "/v1/workflows/"+wf+"/draft", nil), 200)
	ev(chain.WorkflowDrafted, S, wf, "workflow.name", "wf2-"+suffix)
	c.want(c.do("DELETE", "/v1/workflows/"+clone, nil), 204)
	ev(chain.WorkflowDeleted, S, clone, "workflow.id", clone)
	c.want(c.do("DELETE", "/v1/workflows/"+fakeNil, nil), 404)
	ev(chain.WorkflowDeleted, F, fakeNil)
	c.want(c.do("DELETE", "/v1/workflows/not-a-uuid", nil), 400)
	ev(chain.WorkflowDeleted, F, "not-a-uuid")

	// Executor configurations (no create route in Flowker; the fake seeds two).
	c.want(c.do("PATCH", "/v1/executors/"+fakeflowker.SeededExecutorConfigSandboxID, map[string]any{"name": "exec-" + suffix,
		"baseUrl": "https://exec.example", "endpoints": []any{map[string]any{"name": "run", "path": "/run", "method": "POST"}},
		"authentication": map[string]any{"type": "api_key", "config": map[string]any{"key": "exec-secret-987654"}}}), 200)
	ev(chain.ExecutorConfigUpdated, S, fakeflowker.SeededExecutorConfigSandboxID, "executor_config.name", "exec-"+suffix)
	c.want(c.do("DELETE", "/v1/executors/"+fakeflowker.SeededExecutorConfigLedgerID, nil), 422)
	ev(chain.ExecutorConfigDeleted, F, fakeflowker.SeededExecutorConfigLedgerID)

	// Catalog validation changes nothing; unknown mutating routes are still recorded.
	c.do("POST", "/v1/catalog/templates/tracer-midaz-validation/validate", map[string]any{"params": map[string]any{}})
	c.want(c.do("DELETE", "/v1/provider-configurations/"+pc2, nil), 204)
	ev(chain.ProviderConfigDeleted, S, pc2, "provider_config.id", pc2)
	c.want(c.do("POST", "/v1/no-such-route", map[string]any{}), 404)
	ev(chain.UnclassifiedMutation, F, "")
	c.want(c.do("PUT", "/v1/workflows/"+wf+"/executions", map[string]any{}), 405)
	ev(chain.UnclassifiedMutation, F, "")
	c.want(c.do("POST", "//v1/workflows", wfBody), 404)
	ev(chain.UnclassifiedMutation, F, "")
	return events, outcomes
}

const fakeNil = "50205d80-bb2d-48b0-a87d-0f298dd7bdc6"

func TestEveryMutatingRouteBecomesTheRightEvent(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExecutionDelay: 300 * time.Millisecond})

	// The same flows straight against the fake produce no event.
	scenario(t, caller{t: t, base: env.FakeURL})
	if last := env.App.Journal().Last(); last != 0 {
		t.Fatalf("traffic that bypassed the sidecar produced %d events", last)
	}

	want, outcomes := scenario(t, caller{t: t, base: env.ProxyURL})
	// Wait for every execution outcome, then for delivery to the query sink.
	testenv.Eventually(t, 30*time.Second, "execution outcomes", func() bool {
		return int(env.App.Journal().Last()) >= len(want)+len(outcomes)
	})
	env.WaitDelivered(30 * time.Second)
	got := env.AllEvents()

	var sync []chain.Event
	terminal := map[string][]chain.Event{}
	for _, e := range got {
		if e.EventType == chain.ExecutionCompleted || e.EventType == chain.ExecutionFailed {
			terminal[e.ResourceID] = append(terminal[e.ResourceID], e)
			continue
		}
		sync = append(sync, e)
	}
	if len(sync) != len(want) {
		for i, e := range sync {
			t.Logf("%2d %s %s %s", i, e.EventType, e.Result, e.ResourceID)
		}
		t.Fatalf("%d request events, want %d", len(sync), len(want))
	}
	for i, w := range want {
		e := sync[i]
		if e.EventType != w.eventType || e.Result != w.result || e.ResourceID != w.resourceID {
			t.Errorf("event %d: %s %s %q, want %s %s %q", i, e.EventType, e.Result, e.ResourceID, w.eventType, w.result, w.resourceID)
		}
		var meta map[string]string
		_ = json.Unmarshal(e.Metadata, &meta)
		for k, v := range w.meta {
			if meta[k] != v {
				t.Errorf("event %d (%s): metadata %s = %q, want %q", i, e.EventType, k, meta[k], v)
			}
		}
		if e.Actor.Type != chain.ActorAPIKey || !strings.HasPrefix(e.Actor.ID, "key:") || e.Actor.IPAddress != "127.0.0.1" {
			t.Errorf("event %d: actor %+v", i, e.Actor)
		}
		for _, secret := range []string{testenv.FlowkerKey, "pc-secret-123456", "exec-secret-987654"} {
			if strings.Contains(string(e.Context)+string(e.Metadata), secret) {
				t.Errorf("event %d (%s) contains a secret", i, e.EventType)
			}
		}
	}
	if len(terminal) != len(outcomes) {
		t.Fatalf("terminal events for %d executions, want %d", len(terminal), len(outcomes))
	}
	for id, typ := range outcomes {
		evs := terminal[id]
		if len(evs) != 1 || evs[0].EventType != typ || evs[0].Actor.Type != chain.ActorSystem {
			t.Errorf("execution %s: %d terminal events (%v), want exactly one %s", id, len(evs), evs, typ)
			continue
		}
		var meta map[string]string
		_ = json.Unmarshal(evs[0].Metadata, &meta)
		if meta["workflow.id"] == "" || (typ == chain.ExecutionFailed && meta["error"] != "FLK-0504") {
			t.Errorf("execution %s: metadata %v", id, meta)
		}
	}
	// The whole trail verifies through the API.
	r := env.Audit("/v1/audit-events/" + got[len(got)-1].EventID + "/verify")
	var v struct {
		IsValid      bool   `json:"isValid"`
		TotalChecked uint64 `json:"totalChecked"`
	}
	r.JSON(t, &v)
	if !v.IsValid || v.TotalChecked != uint64(len(got)) {
		t.Fatalf("verify: %s", r.Body)
	}
	t.Logf("%d request events and %d execution outcomes recorded and verified", len(sync), len(outcomes))
}
