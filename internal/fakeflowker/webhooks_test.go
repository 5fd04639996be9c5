package fakeflowker

import (
	"net/http"
	"strings"
	"testing"
)

func TestWebhooks(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	wf := e.activeWorkflow("hooked", "/sandbox/payouts/screen", "hook-secret", pc)
	open := e.activeWorkflow("open", "open/hook/", "", pc)

	token := map[string]string{"X-Webhook-Token": "hook-secret"}

	// Token check.
	r := e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{"amount": 1}})
	e.expect(r, http.StatusUnauthorized, "FLK-0362")

	if r.str("message") != "invalid or missing webhook verification token" {
		t.Fatalf("401 body = %s", r.raw)
	}

	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{},
		header: map[string]string{"X-Webhook-Token": "wrong"}}), http.StatusUnauthorized, "FLK-0362")

	// The guard still applies to webhooks.
	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{}, header: token, noKey: true}),
		http.StatusUnauthorized, "UNAUTHORIZED")

	// A good call, with a trailing slash and an Idempotency-Key.
	r = e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen/?source=bank", body: map[string]any{"amount": 5},
		header: map[string]string{"X-Webhook-Token": "hook-secret", "Idempotency-Key": "hook-evt-1", "Authorization": "Bearer secret"}})
	e.expect(r, http.StatusCreated, "")

	exID := r.str("executionId")
	if r.header.Get("X-Webhook-Workflow-ID") != wf || r.header.Get("X-Webhook-Execution-ID") != exID || r.str("workflowId") != wf || r.str("status") != "running" {
		t.Fatalf("webhook response = %v %s", r.header, r.raw)
	}

	// Replay while running: 201, then 200 once terminal.
	again := e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{"amount": 6},
		header: map[string]string{"X-Webhook-Token": "hook-secret", "Idempotency-Key": "hook-evt-1"}})
	e.expect(again, http.StatusCreated, "")

	if again.str("executionId") != exID {
		t.Fatalf("replay = %s", again.raw)
	}

	e.srv.FinishExecution(exID)

	again = e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{"amount": 6},
		header: map[string]string{"X-Webhook-Token": "hook-secret", "Idempotency-Key": "hook-evt-1"}})
	e.expect(again, http.StatusOK, "")

	if again.header.Get("X-Webhook-Execution-ID") != exID {
		t.Fatalf("terminal replay headers = %v", again.header)
	}

	// The webhook metadata is part of inputData, without credentials.
	res := e.get("/v1/executions/" + exID + "/results")

	hook, _ := getPath(res.body, "finalOutput.workflow._webhook")
	meta, _ := hook.(map[string]any)

	if meta["method"] != "POST" || meta["path"] != "sandbox/payouts/screen" || meta["remote_ip"] != "127.0.0.1" {
		t.Fatalf("_webhook = %v", meta)
	}

	if q, _ := meta["query"].(map[string]any); q["source"] != "bank" {
		t.Fatalf("_webhook.query = %v", meta["query"])
	}

	headers, _ := meta["headers"].(map[string]any)
	for k := range headers {
		switch strings.ToLower(k) {
		case "authorization", "x-api-key", "x-webhook-token":
			t.Fatalf("credential header %s copied into inputData", k)
		}
	}

	if headers["Idempotency-Key"] != "hook-evt-1" {
		t.Fatalf("_webhook.headers = %v", headers)
	}

	// Without a token configured, no header is needed; an empty body is fine.
	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/open/hook"}), http.StatusCreated, "")

	tests := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{name: "other method", r: req{method: "PUT", path: "/v1/webhooks/open/hook", body: map[string]any{}}, status: 404, code: "FLK-0361"},
		{name: "paths are case-sensitive", r: req{method: "POST", path: "/v1/webhooks/Open/hook", body: map[string]any{}}, status: 404, code: "FLK-0361"},
		{name: "upper-case prefix still routes", r: req{method: "POST", path: "/V1/WEBHOOKS/open/hook", body: map[string]any{}}, status: 201},
		{name: "unknown path", r: req{method: "GET", path: "/v1/webhooks/nope"}, status: 404, code: "FLK-0361"},
		{name: "bare prefix", r: req{method: "POST", path: "/v1/webhooks"}, status: 404, code: "FLK-0361"},
		{name: "array body", r: req{method: "POST", path: "/v1/webhooks/open/hook", body: `[1,2]`}, status: 400, code: "FLK-0001"},
		{name: "form body", r: req{method: "POST", path: "/v1/webhooks/open/hook", body: `a=1`, ctype: "application/x-www-form-urlencoded"}, status: 400, code: "FLK-0001"},
		{name: "text body", r: req{method: "POST", path: "/v1/webhooks/open/hook", body: `{}`, ctype: "text/plain"}, status: 400, code: "FLK-0001"},
		{name: "too large", r: req{method: "POST", path: "/v1/webhooks/nope", body: `{"p":"` + strings.Repeat("x", maxExecutionBody) + `"}`}, status: 413, code: "FLK-0363"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(e.do(tc.r), tc.status, tc.code)
		})
	}

	e.t = t

	// Idempotency keys are shared with manual executions.
	manual := e.execute(open, "shared-key", nil)
	e.expect(manual, http.StatusCreated, "")

	shared := e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{},
		header: map[string]string{"X-Webhook-Token": "hook-secret", "Idempotency-Key": "shared-key"}})
	e.expect(shared, http.StatusCreated, "")

	if shared.str("executionId") != manual.str("executionId") || shared.str("workflowId") != open || shared.header.Get("X-Webhook-Workflow-ID") != wf {
		t.Fatalf("shared key = %v %s", shared.header, shared.raw)
	}

	// Deactivation removes the route; activation again restores it.
	e.expect(e.post("/v1/workflows/"+wf+"/deactivate", nil), http.StatusOK, "")
	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{}, header: token}), http.StatusNotFound, "FLK-0361")
	e.expect(e.post("/v1/workflows/"+wf+"/draft", nil), http.StatusOK, "")
	e.expect(e.post("/v1/workflows/"+wf+"/activate", nil), http.StatusOK, "")
	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/sandbox/payouts/screen", body: map[string]any{}, header: token}), http.StatusCreated, "")

	// Deleting an inactive workflow keeps the route gone.
	e.expect(e.post("/v1/workflows/"+open+"/deactivate", nil), http.StatusOK, "")
	e.expect(e.do(req{method: "DELETE", path: "/v1/workflows/" + open}), http.StatusNoContent, "")
	e.expect(e.do(req{method: "POST", path: "/v1/webhooks/open/hook"}), http.StatusNotFound, "FLK-0361")
}

func TestNormalizeWebhookPath(t *testing.T) {
	tests := map[string]string{
		"a/b":   "/a/b",
		"/a/b/": "/a/b",
		"/a//":  "/a",
		"/":     "",
		"":      "",
	}

	for in, want := range tests {
		if got := normalizeWebhookPath(in); got != want {
			t.Errorf("normalizeWebhookPath(%q) = %q, want %q", in, got, want)
		}
	}

	if got := webhookKey("post", "x/"); got != "POST /x" {
		t.Errorf("webhookKey = %q", got)
	}
}
