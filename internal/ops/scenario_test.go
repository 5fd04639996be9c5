package ops

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// Secrets the scenario sends. None of them may appear in logs.
const (
	providerSecret = "pc-secret-5531-provider"
	cookieSecret   = "cookie-secret-7710-session"
	bodyPassword   = "body-password-4409-secret"
)

// scenario is a fixed sequence of requests through the sidecar: successes and failures of
// several audited routes, an execution (whose outcome the watcher learns), an idempotent
// replay, an unclassified mutation, and reads that are not audited.
type scenario struct {
	t    *testing.T
	base string // the sidecar's proxy URL
	hdr  map[string]string

	// AuditIDs are the X-Audit-Id headers of every response that carried one.
	AuditIDs []string
	// Sync counts the events the requests produce (the execution outcome comes later).
	Sync int
	// Executions started (each produces one terminal event).
	Executions []string
	// Workflow is the id of the workflow created (and activated).
	Workflow string
	// ProviderConfig is the id of the provider configuration created.
	ProviderConfig string
}

func newScenario(t *testing.T, proxyURL string, extraHeaders ...string) *scenario {
	h := map[string]string{"X-API-Key": testenv.FlowkerKey}
	for i := 0; i+1 < len(extraHeaders); i += 2 {
		h[extraHeaders[i]] = extraHeaders[i+1]
	}
	return &scenario{t: t, base: proxyURL, hdr: h}
}

// call sends one request and checks its status; audited says whether it must produce an event.
func (s *scenario) call(method, path string, body any, status int, audited bool, hdr ...string) testenv.Response {
	s.t.Helper()
	h := map[string]string{}
	for k, v := range s.hdr {
		h[k] = v
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	r := testenv.Do(s.t, method, s.base+path, body, h)
	if r.Status != status {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	id := r.Header.Get("X-Audit-Id")
	switch {
	case audited && id == "":
		s.t.Fatalf("%s %s: no X-Audit-Id on an audited request", method, path)
	case !audited && id != "":
		s.t.Fatalf("%s %s: X-Audit-Id %s on a request that changes nothing", method, path, id)
	}
	if audited {
		s.AuditIDs = append(s.AuditIDs, id)
		s.Sync++
	}
	return r
}

func (s *scenario) field(r testenv.Response, name string) string {
	s.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		s.t.Fatalf("decoding %s: %v", r.Body, err)
	}
	v, _ := m[name].(string)
	if v == "" {
		s.t.Fatalf("no %q in %s", name, r.Body)
	}
	return v
}

// run sends the scenario's requests.
func (s *scenario) run() {
	s.t.Helper()
	pc := s.call("POST", "/v1/provider-configurations", map[string]any{"name": "tracer-ops", "providerId": "tracer",
		"config": map[string]any{"base_url": "https://tracer.example", "api_key": providerSecret}}, http.StatusCreated, true,
		"Cookie", "session="+cookieSecret)
	s.ProviderConfig = s.field(pc, "id")
	s.call("POST", "/v1/provider-configurations", map[string]any{"name": "bad", "providerId": "nope", "config": map[string]any{}},
		http.StatusNotFound, true)
	s.call("PATCH", "/v1/provider-configurations/"+s.ProviderConfig, map[string]any{"name": "tracer-ops-2", "password": bodyPassword},
		http.StatusOK, true)
	wf := s.call("POST", "/v1/workflows", map[string]any{"name": "wf-ops", "nodes": []any{map[string]any{"id": "hook", "type": "trigger",
		"data": map[string]any{"triggerType": "webhook", "path": "/ops/hook", "method": "POST"}}}}, http.StatusCreated, true)
	s.Workflow = s.field(wf, "workflowId")
	s.call("POST", "/v1/workflows", `{"name":"plain"}`, http.StatusBadRequest, true, "Content-Type", "text/plain")
	s.call("POST", "/v1/workflows/"+s.Workflow+"/activate", nil, http.StatusOK, true)
	ex := s.call("POST", "/v1/workflows/"+s.Workflow+"/executions", map[string]any{"inputData": map[string]any{"amount": 1}},
		http.StatusCreated, true, "Idempotency-Key", "ops-k1")
	s.Executions = append(s.Executions, s.field(ex, "executionId"))
	// The same Idempotency-Key again: a replay, no new execution, no event.
	r := testenv.Do(s.t, "POST", s.base+"/v1/workflows/"+s.Workflow+"/executions", map[string]any{"inputData": map[string]any{"amount": 2}},
		map[string]string{"X-API-Key": testenv.FlowkerKey, "Idempotency-Key": "ops-k1"})
	if (r.Status != http.StatusOK && r.Status != http.StatusCreated) || r.Header.Get("X-Audit-Id") != "" {
		s.t.Fatalf("replay: status %d, X-Audit-Id %q: %s", r.Status, r.Header.Get("X-Audit-Id"), r.Body)
	}
	s.call("POST", "/v1/no-such-route", map[string]any{}, http.StatusNotFound, true)
	s.call("DELETE", "/v1/workflows/not-a-uuid", nil, http.StatusBadRequest, true)
	// Reads and a route that changes nothing: forwarded, not audited.
	s.call("GET", "/v1/workflows/"+s.Workflow, nil, http.StatusOK, false)
	s.call("POST", "/v1/provider-configurations/"+s.ProviderConfig+"/test", nil, http.StatusOK, false)
}

// total is the number of events the scenario produces once every execution outcome is known.
func (s *scenario) total() int { return s.Sync + len(s.Executions) }
