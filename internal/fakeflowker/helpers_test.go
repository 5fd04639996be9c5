package fakeflowker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAPIKey = "test-api-key-0001"

// noContentType as req.ctype sends a body without a Content-Type header.
const noContentType = "-"

// httptestRecorder serves one request in-process (the raw target is kept
// in RequestURI, so paths the HTTP client would escape can be tested).
func httptestRecorder(h http.Handler, method, target string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)

	return rec
}

// stepClock is a deterministic clock: every call advances by step.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newStepClock() *stepClock {
	return &stepClock{t: time.Date(2026, 11, 23, 1, 8, 0, 0, time.UTC), step: 10*time.Millisecond + 123*time.Nanosecond}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.t = c.t.Add(c.step)

	return c.t
}

type testEnv struct {
	t   *testing.T
	srv *Server
	ts  *httptest.Server
	key string
}

// newEnv starts a fake behind httptest with an API key and a step clock.
// delay 0 means "never on its own" (one hour): tests call FinishExecution.
func newEnv(t *testing.T, delay time.Duration) *testEnv {
	t.Helper()

	if delay == 0 {
		delay = time.Hour
	}

	srv := New(Options{APIKey: testAPIKey, ExecutionDelay: delay, Now: newStepClock().Now})
	ts := httptest.NewServer(srv)

	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})

	return &testEnv{t: t, srv: srv, ts: ts, key: testAPIKey}
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
	list   []any
}

func (r response) str(path string) string {
	v, _ := getPath(r.body, path)
	s, _ := v.(string)

	return s
}

func (r response) code() string {
	s, _ := r.body["code"].(string)
	return s
}

type req struct {
	method string
	path   string
	body   any // nil, string (raw), []byte (raw) or a value encoded as JSON
	header map[string]string
	noKey  bool
	ctype  string
}

func (e *testEnv) do(r req) response {
	e.t.Helper()

	var body io.Reader

	ctype := r.ctype

	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode request body: %v", err)
		}

		body = bytes.NewReader(raw)
	}

	if body != nil && ctype == "" {
		ctype = "application/json"
	}

	hr, err := http.NewRequest(r.method, e.ts.URL+r.path, body)
	if err != nil {
		e.t.Fatalf("build request %s %s: %v", r.method, r.path, err)
	}

	if ctype != "" && ctype != noContentType {
		hr.Header.Set("Content-Type", ctype)
	}

	if !r.noKey {
		hr.Header.Set("X-API-Key", e.key)
	}

	for k, v := range r.header {
		hr.Header.Set(k, v)
	}

	res, err := e.ts.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}

	defer res.Body.Close()

	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read response of %s %s: %v", r.method, r.path, err)
	}

	out := response{status: res.StatusCode, header: res.Header, raw: raw}

	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			e.t.Fatalf("decode response of %s %s: %v (%s)", r.method, r.path, err, raw)
		}

		switch x := v.(type) {
		case map[string]any:
			out.body = x
		case []any:
			out.list = x
		}
	}

	return out
}

func (e *testEnv) get(path string) response { return e.do(req{method: http.MethodGet, path: path}) }

func (e *testEnv) post(path string, body any) response {
	return e.do(req{method: http.MethodPost, path: path, body: body})
}

// expect checks the status and, when code is not empty, the error code.
func (e *testEnv) expect(r response, status int, code string) {
	e.t.Helper()

	if r.status != status {
		e.t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}

	if code != "" && r.code() != code {
		e.t.Fatalf("code = %q, want %q; body %s", r.code(), code, r.raw)
	}
}

// createProvider creates a provider configuration and returns its id.
func (e *testEnv) createProvider(name, providerID string, cfg map[string]any) string {
	e.t.Helper()

	r := e.post("/v1/provider-configurations", map[string]any{"name": name, "providerId": providerID, "config": cfg})
	e.expect(r, http.StatusCreated, "")

	return r.str("id")
}

func (e *testEnv) tracerProvider(name, baseURL string) string {
	return e.createProvider(name, "tracer", map[string]any{"base_url": baseURL, "api_key": "sandbox-key-0a7f"})
}

// webhookWorkflow is a trigger -> executor workflow body.
func webhookWorkflow(name, path, token, providerID string) map[string]any {
	trigger := map[string]any{"triggerType": "webhook", "path": path, "method": "POST"}
	if token != "" {
		trigger["verify_token"] = token
	}

	return map[string]any{
		"name":     name,
		"metadata": map[string]any{"team": "qa"},
		"nodes": []any{
			map[string]any{"id": "hook", "type": "trigger", "name": "Hook", "position": map[string]any{"x": 0, "y": 0}, "data": trigger},
			map[string]any{"id": "screen", "type": "executor", "name": "Screen", "position": map[string]any{"x": 200, "y": 0}, "data": map[string]any{
				"executorId": "tracer.validate-transaction", "providerConfigId": providerID, "endpointName": "screen",
				"inputMapping":  []any{map[string]any{"source": "workflow.amount", "target": "amount"}},
				"outputMapping": []any{map[string]any{"source": "body.decision", "target": "screening.decision"}},
			}},
		},
		"edges": []any{map[string]any{"id": "e1", "source": "hook", "target": "screen"}},
	}
}

// activeWorkflow creates and activates a webhook workflow; returns its id.
func (e *testEnv) activeWorkflow(name, path, token, providerID string) string {
	e.t.Helper()

	r := e.post("/v1/workflows", webhookWorkflow(name, path, token, providerID))
	e.expect(r, http.StatusCreated, "")

	id := r.str("workflowId")
	e.expect(e.post("/v1/workflows/"+id+"/activate", nil), http.StatusOK, "")

	return id
}

func (e *testEnv) execute(workflowID, key string, input map[string]any) response {
	e.t.Helper()

	return e.do(req{
		method: http.MethodPost, path: "/v1/workflows/" + workflowID + "/executions",
		body: map[string]any{"inputData": input}, header: map[string]string{"Idempotency-Key": key},
	})
}

// waitTerminal polls GET /v1/executions/{id} until it is terminal.
func (e *testEnv) waitTerminal(id string) response {
	e.t.Helper()

	deadline := time.Now().Add(10 * time.Second)

	for {
		r := e.get("/v1/executions/" + id)
		e.expect(r, http.StatusOK, "")

		if st := r.str("status"); st == execCompleted || st == execFailed {
			return r
		}

		if time.Now().After(deadline) {
			e.t.Fatalf("execution %s not terminal before the deadline: %s", id, r.raw)
		}

		time.Sleep(5 * time.Millisecond)
	}
}
