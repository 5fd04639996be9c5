package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// stallGate sits between the sidecar and the fake Flowker. While holding, it lets Flowker apply
// each mutating request at once but keeps the answer back, so that the sidecar can be killed
// after the change and before its event: the intent the proxy wrote is then all that is left.
type stallGate struct {
	h       http.Handler
	mu      sync.Mutex
	holding bool
	release chan struct{}
	answers map[string]string // "METHOD path" -> Flowker's answer body
}

func (g *stallGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	hold, release := g.holding && r.Method != http.MethodGet, g.release
	g.mu.Unlock()
	if !hold {
		g.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	g.h.ServeHTTP(rec, r.WithContext(context.WithoutCancel(r.Context())))
	g.mu.Lock()
	g.answers[r.Method+" "+r.URL.Path] = rec.Body.String()
	g.mu.Unlock()
	select {
	case <-release:
	case <-r.Context().Done():
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (g *stallGate) answered(n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.answers) == n
}

// TestStalledRequestsAreRecoveredFromTheProxysIntents: requests of the routes recovery used to
// leave unknown (from-template, clone, provider enable/disable, executor configurations,
// webhooks with and without a key, starts by key) reach Flowker and are applied; the sidecar
// process is killed with SIGKILL before their answers come back. At the next start each intent,
// as the proxy wrote it, becomes one event with the outcome and the resource Flowker shows.
func TestStalledRequestsAreRecoveredFromTheProxysIntents(t *testing.T) {
	fake := fakeflowker.New(fakeflowker.Options{APIKey: testenv.FlowkerKey, ExecutionDelay: 200 * time.Millisecond})
	defer fake.Close()
	seed := func(names ...string) []string {
		ep := []fakeflowker.ExecutorEndpoint{{Name: "e", Path: "/e", Method: "POST"}}
		var ids []string
		for _, n := range names {
			id, err := fake.SeedExecutorConfig(fakeflowker.ExecutorConfigSeed{Name: n, BaseURL: "http://127.0.0.1:9", Endpoints: ep})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	stalledRecovery(t, fake, testenv.FlowkerKey, seed, "stall")
}

// TestStalledRequestsAreRecoveredAgainstTheRealFlowker is the same against a running real
// Flowker (opt-in: REAL_FLOWKER_URL and REAL_FLOWKER_KEY; with
// REAL_FLOWKER_EXECUTOR_IDS naming two executor configurations it may change and
// delete, their requests are included).
func TestStalledRequestsAreRecoveredAgainstTheRealFlowker(t *testing.T) {
	base := strings.TrimRight(os.Getenv("REAL_FLOWKER_URL"), "/")
	if base == "" {
		t.Skip("set REAL_FLOWKER_URL (and REAL_FLOWKER_KEY) to a running real Flowker to run this test (docs/FLOWKER-BEHAVIOUR.md)")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var seed func(...string) []string
	if ids := strings.Split(os.Getenv("REAL_FLOWKER_EXECUTOR_IDS"), ","); len(ids) == 2 {
		seed = func(...string) []string { return ids }
	}
	stalledRecovery(t, httputil.NewSingleHostReverseProxy(u), os.Getenv("REAL_FLOWKER_KEY"), seed, "stall-"+uuid.NewString()[:8])
}

// stalledRecovery runs the scenario against flowker. seedExecutors (nil: none can be made)
// returns the ids of executor configurations with these names. run prefixes names and paths.
func stalledRecovery(t *testing.T, flowker http.Handler, key string, seedExecutors func(names ...string) []string, run string) {
	gate := &stallGate{h: flowker, release: make(chan struct{}), answers: map[string]string{}}
	fsrv := httptest.NewServer(gate)
	defer fsrv.Close()
	dir := t.TempDir()
	pp, ap := freePort(t), freePort(t)
	cfg := writeCrashConfig(t, dir, fsrv.URL, pp, ap, "")
	if key != testenv.FlowkerKey {
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "api_key: \""+testenv.FlowkerKey+"\"", "api_key: \""+key+"\"", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	proc := startProcess(t, cfg, pp, ap)
	env := &testenv.Env{ProxyURL: proc.proxy}
	call := func(method, path string, body any, hdr ...string) map[string]any {
		t.Helper()
		h := map[string]string{"X-API-Key": key}
		for i := 0; i+1 < len(hdr); i += 2 {
			h[hdr[i]] = hdr[i+1]
		}
		r := testenv.Do(t, method, proc.proxy+path, body, h)
		if r.Status >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		var m map[string]any
		_ = json.Unmarshal(r.Body, &m)
		return m
	}
	trigger := func(p string) []any {
		return []any{map[string]any{"id": "t", "type": "trigger", "position": map[string]any{"x": 0, "y": 0},
			"data": map[string]any{"triggerType": "webhook", "path": p, "method": "POST"}}}
	}

	// Fixtures, through the sidecar (their events are journaled as usual).
	source := call("POST", "/v1/workflows", map[string]any{"name": run + "-source"})["workflowId"].(string)
	runner := call("POST", "/v1/workflows", map[string]any{"name": run + "-runner", "nodes": trigger("/" + run + "/runner")})["workflowId"].(string)
	call("POST", "/v1/workflows/"+runner+"/activate", nil)
	hooked := call("POST", "/v1/workflows", map[string]any{"name": run + "-hooked", "nodes": trigger("/" + run + "/hooked")})["workflowId"].(string)
	call("POST", "/v1/workflows/"+hooked+"/activate", nil)
	pcBody := func(n string) map[string]any {
		return map[string]any{"name": n, "providerId": "tracer", "config": map[string]any{"base_url": "http://127.0.0.1:9/t", "api_key": "k-" + n}}
	}
	tracer := call("POST", "/v1/provider-configurations", pcBody(run+"-tracer"))["id"].(string)
	midaz := call("POST", "/v1/provider-configurations", map[string]any{"name": run + "-midaz", "providerId": "midaz",
		"config": map[string]any{"onboarding_base_url": "http://127.0.0.1:9/o", "transaction_base_url": "http://127.0.0.1:9/t",
			"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870"}})["id"].(string)
	toDisable := call("POST", "/v1/provider-configurations", pcBody(run+"-to-disable"))["id"].(string)
	toEnable := call("POST", "/v1/provider-configurations", pcBody(run+"-to-enable"))["id"].(string)
	call("POST", "/v1/provider-configurations/"+toEnable+"/disable", nil)
	var exUpdate, exDelete string
	if seedExecutors != nil {
		ids := seedExecutors(run+"-ex-update", run+"-ex-delete")
		exUpdate, exDelete = ids[0], ids[1]
	} else {
		t.Log("executor configuration requests left out: none can be made on this Flowker")
	}
	time.Sleep(1100 * time.Millisecond) // the fixtures' changes fall before the recovery's clock allowance

	// The stalled requests: applied by Flowker, answered never.
	type stalled struct {
		method, path string
		body         any
		hdr          []string
		// want
		eventType, resourceFrom string // resourceFrom: the answer's field holding the new id, or a fixed id
	}
	reqs := []stalled{
		{"POST", "/v1/workflows/from-template", map[string]any{"templateId": "tracer-midaz-validation", "params": map[string]any{
			"workflowName": run + "-from-template", "tracerProviderConfigId": tracer, "midazProviderConfigId": midaz}}, nil, chain.WorkflowCreated, "workflowId"},
		{"POST", "/v1/workflows/" + source + "/clone", map[string]any{"name": run + "-clone"}, nil, chain.WorkflowCreated, "workflowId"},
		{"POST", "/v1/provider-configurations/" + toDisable + "/disable", nil, nil, chain.ProviderConfigUpdated, "=" + toDisable},
		{"POST", "/v1/provider-configurations/" + toEnable + "/enable", nil, nil, chain.ProviderConfigUpdated, "=" + toEnable},
		{"POST", "/v1/workflows/" + runner + "/executions", map[string]any{"inputData": map[string]any{}}, []string{"Idempotency-Key", run + "-run"}, chain.ExecutionStarted, "executionId"},
		{"POST", "/v1/webhooks/" + run + "/runner", map[string]any{"n": 1}, []string{"Idempotency-Key", run + "-hook"}, chain.ExecutionStarted, "executionId"},
		{"POST", "/v1/webhooks/" + run + "/hooked", map[string]any{"n": 2}, nil, chain.ExecutionStarted, "executionId"},
	}
	if exUpdate != "" {
		reqs = append(reqs,
			stalled{"PATCH", "/v1/executors/" + exUpdate, map[string]any{"name": run + "-ex-updated", "baseUrl": "http://127.0.0.1:9",
				"endpoints": []any{map[string]any{"name": "e", "path": "/e", "method": "POST"}}, "authentication": map[string]any{"type": "none"}},
				nil, chain.ExecutorConfigUpdated, "=" + exUpdate},
			stalled{"DELETE", "/v1/executors/" + exDelete, nil, nil, chain.ExecutorConfigDeleted, "=" + exDelete})
	}
	gate.mu.Lock()
	gate.holding = true
	gate.mu.Unlock()
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := map[string]string{"X-API-Key": key}
			for i := 0; i+1 < len(r.hdr); i += 2 {
				h[r.hdr[i]] = r.hdr[i+1]
			}
			var body string
			if r.body != nil {
				b, _ := json.Marshal(r.body)
				body = string(b)
			}
			req, _ := http.NewRequest(r.method, proc.proxy+r.path, strings.NewReader(body))
			for k, v := range h {
				req.Header.Set(k, v)
			}
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close() // the sidecar died: no answer is expected
			}
		}()
	}
	testenv.Eventually(t, 30*time.Second, "Flowker to apply every stalled request", func() bool { return gate.answered(len(reqs)) })
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	wg.Wait()
	gate.mu.Lock()
	gate.holding = false
	close(gate.release)
	gate.mu.Unlock()

	proc = startProcess(t, cfg, pp, ap)
	env.ProxyURL = proc.proxy
	type found struct {
		ev      chain.Event
		outcome string
		says    string
	}
	byPath := map[string]found{}
	testenv.Eventually(t, 60*time.Second, "an event for every stalled request", func() bool {
		for _, e := range allEvents(t, env) {
			var c struct {
				Path     string `json:"path"`
				Method   string `json:"method"`
				Outcome  string `json:"outcome"`
				Evidence string `json:"outcomeEvidence"`
				Reason   string `json:"outcomeReason"`
			}
			_ = json.Unmarshal(e.Context, &c)
			if c.Outcome != "" {
				byPath[c.Method+" "+c.Path] = found{e, c.Outcome, c.Evidence + c.Reason}
			}
		}
		return len(byPath) == len(reqs)
	})
	for _, r := range reqs {
		k := r.method + " " + r.path
		t.Run(k, func(t *testing.T) {
			f := byPath[k]
			want, _ := strings.CutPrefix(r.resourceFrom, "=")
			if want == r.resourceFrom {
				var a map[string]any
				_ = json.Unmarshal([]byte(gate.answers[k]), &a)
				want, _ = a[r.resourceFrom].(string)
			}
			if f.ev.EventType != r.eventType || f.ev.Result != chain.ResultSuccess || f.outcome != "reconciled" || f.ev.ResourceID != want || want == "" {
				t.Fatalf("%s %s %s resource %q (want %s SUCCESS reconciled %q): %s", f.ev.EventType, f.ev.Result, f.outcome, f.ev.ResourceID,
					r.eventType, want, f.says)
			}
			t.Logf("%s", f.says)
		})
	}
}
