package fakeflowker

import (
	"net/http"
	"testing"
)

func TestExecutorConfigs(t *testing.T) {
	e := newEnv(t, 0)

	r := e.get("/v1/executors")
	e.expect(r, http.StatusOK, "")

	if items := r.body["items"].([]any); len(items) != 2 {
		t.Fatalf("seeded executor configurations = %s", r.raw)
	}

	r = e.get("/v1/executors/" + SeededExecutorConfigLedgerID)
	e.expect(r, http.StatusOK, "")

	if r.str("status") != ExecutorActive || r.str("authentication.type") != "api_key" || r.str("authentication.config.key") != "****0000" || r.str("lastTestedAt") == "" {
		t.Fatalf("ledger seed = %s", r.raw)
	}

	patch := map[string]any{
		"name": "sandbox-http-echo-v2", "baseUrl": "http://127.0.0.1:4031/echo",
		"endpoints":      []any{map[string]any{"name": "echo", "path": "/echo", "method": "POST"}},
		"authentication": map[string]any{"type": "bearer", "config": map[string]any{"token": "t-123456789"}},
		"metadata":       map[string]any{"rev": 1},
	}

	r = e.do(req{method: "PATCH", path: "/v1/executors/" + SeededExecutorConfigSandboxID, body: patch})
	e.expect(r, http.StatusOK, "")

	if r.str("name") != "sandbox-http-echo-v2" || r.str("authentication.config.token") != "****6789" || r.str("status") != ExecutorConfigured {
		t.Fatalf("patch = %s", r.raw)
	}

	tests := []struct {
		name   string
		method string
		id     string
		body   any
		status int
		code   string
	}{
		{name: "patch active", method: "PATCH", id: SeededExecutorConfigLedgerID, body: patch, status: 422, code: "FLK-0252"},
		{name: "patch invalid", method: "PATCH", id: SeededExecutorConfigSandboxID, body: map[string]any{"name": "x"}, status: 500, code: "FLK-9999"},
		{name: "patch duplicate name", method: "PATCH", id: SeededExecutorConfigSandboxID, body: map[string]any{
			"name": "ledger-gateway", "baseUrl": "http://x", "endpoints": patch["endpoints"], "authentication": map[string]any{"type": "none"},
		}, status: 409, code: "FLK-0251"},
		{name: "patch bad body", method: "PATCH", id: SeededExecutorConfigSandboxID, body: "{", status: 400, code: "FLK-0001"},
		{name: "patch unknown", method: "PATCH", id: "50205d80-bb2d-48b0-a87d-0f298dd7bdc6", body: patch, status: 404, code: "FLK-0250"},
		{name: "get bad id", method: "GET", id: "nope", status: 400, code: "FLK-0002"},
		{name: "get unknown", method: "GET", id: "50205d80-bb2d-48b0-a87d-0f298dd7bdc6", status: 404, code: "FLK-0250"},
		{name: "delete active", method: "DELETE", id: SeededExecutorConfigLedgerID, status: 422, code: "FLK-0252"},
		{name: "delete configured", method: "DELETE", id: SeededExecutorConfigSandboxID, status: 204},
		{name: "delete again", method: "DELETE", id: SeededExecutorConfigSandboxID, status: 404, code: "FLK-0250"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(e.do(req{method: tc.method, path: "/v1/executors/" + tc.id, body: tc.body}), tc.status, tc.code)
		})
	}
}

func TestSeedExecutorConfig(t *testing.T) {
	e := newEnv(t, 0)

	ep := []ExecutorEndpoint{{Name: "a", Path: "/a", Method: "GET"}}

	id, err := e.srv.SeedExecutorConfig(ExecutorConfigSeed{Name: "extra", BaseURL: "http://x", Endpoints: ep, Status: ExecutorDisabled})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}

	r := e.get("/v1/executors?status=disabled")
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("status filter = %s", r.raw)
	}

	r = e.get("/v1/executors?limit=1&sortBy=name&sortOrder=ASC")
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "extra" || r.str("nextCursor") == "" {
		t.Fatalf("name ASC page = %s", r.raw)
	}

	e.expect(e.get("/v1/executors?cursor=!!!"), http.StatusInternalServerError, "FLK-9999")

	bad := []ExecutorConfigSeed{
		{ID: "nope", Name: "x", BaseURL: "http://x", Endpoints: ep},
		{ID: id, Name: "other", BaseURL: "http://x", Endpoints: ep},
		{Name: "extra", BaseURL: "http://x", Endpoints: ep},
		{Name: "y", BaseURL: "http://x", Endpoints: ep, Status: "weird"},
		{Name: "z", BaseURL: "not a url", Endpoints: ep},
		{Name: "w", BaseURL: "http://x"},
	}

	for i, seed := range bad {
		if _, err := e.srv.SeedExecutorConfig(seed); err == nil {
			t.Errorf("bad seed %d accepted", i)
		}
	}
}
