package fakeflowker

import (
	"net/http"
	"net/url"
	"testing"
)

func TestProviderConfigLifecycle(t *testing.T) {
	e := newEnv(t, 0)

	r := e.post("/v1/provider-configurations", map[string]any{
		"name": "aml", "description": "AML", "providerId": "tracer",
		"config":   map[string]any{"base_url": "http://127.0.0.1:9/aml", "api_key": "sandbox-outage-55c2"},
		"metadata": map[string]any{"costCenter": "CC-1"},
	})
	e.expect(r, http.StatusCreated, "")

	id := r.str("id")
	if r.str("status") != "active" || r.str("name") != "aml" || len(r.body) != 4 {
		t.Fatalf("create output = %s", r.raw)
	}

	r = e.get("/v1/provider-configurations/" + id)
	e.expect(r, http.StatusOK, "")

	if r.str("config.api_key") != "****55c2" || r.str("config.base_url") != "http://127.0.0.1:9/aml" || r.str("providerId") != "tracer" {
		t.Fatalf("get = %s", r.raw)
	}

	r = e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + id, body: map[string]any{
		"name": "aml-v2", "metadata": map[string]any{"rev": 2},
	}})
	e.expect(r, http.StatusOK, "")

	if r.str("name") != "aml-v2" || r.str("description") != "AML" || r.str("metadata.costCenter") != "CC-1" || r.body["metadata"].(map[string]any)["rev"] != float64(2) {
		t.Fatalf("patch = %s", r.raw)
	}

	e.expect(e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + id, body: `{"description": "half`}), http.StatusBadRequest, "FLK-0001")
	e.expect(e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + id, body: map[string]any{"config": map[string]any{"base_url": "x"}}}),
		http.StatusInternalServerError, "FLK-9999")
	e.expect(e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + id, body: map[string]any{"name": ""}}), http.StatusInternalServerError, "FLK-9999")

	// Status transitions.
	e.expect(e.post("/v1/provider-configurations/"+id+"/enable", nil), http.StatusUnprocessableEntity, "FLK-0292")

	r = e.post("/v1/provider-configurations/"+id+"/disable", nil)
	e.expect(r, http.StatusOK, "")

	if r.str("status") != "disabled" {
		t.Fatalf("disable = %s", r.raw)
	}

	e.expect(e.post("/v1/provider-configurations/"+id+"/disable", nil), http.StatusUnprocessableEntity, "FLK-0292")

	if r = e.post("/v1/provider-configurations/"+id+"/enable", nil); r.status != http.StatusOK || r.str("status") != "active" {
		t.Fatalf("enable = %d %s", r.status, r.raw)
	}

	// Duplicate names.
	other := e.tracerProvider("other", "http://127.0.0.1:9/other")
	e.expect(e.post("/v1/provider-configurations", map[string]any{"name": "aml-v2", "providerId": "tracer",
		"config": map[string]any{"base_url": "http://x", "api_key": "k"}}), http.StatusConflict, "FLK-0291")
	e.expect(e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + other, body: map[string]any{"name": "aml-v2"}}), http.StatusConflict, "FLK-0291")

	// Delete has no status restriction.
	e.expect(e.do(req{method: "DELETE", path: "/v1/provider-configurations/" + id}), http.StatusNoContent, "")
	e.expect(e.do(req{method: "DELETE", path: "/v1/provider-configurations/" + id}), http.StatusNotFound, "FLK-0290")
	e.expect(e.get("/v1/provider-configurations/"+id), http.StatusNotFound, "FLK-0290")
	e.expect(e.post("/v1/provider-configurations/"+id+"/disable", nil), http.StatusNotFound, "FLK-0290")
	e.expect(e.do(req{method: "PATCH", path: "/v1/provider-configurations/" + id, body: map[string]any{}}), http.StatusNotFound, "FLK-0290")

	r = e.do(req{method: "DELETE", path: "/v1/provider-configurations/not-a-uuid"})
	e.expect(r, http.StatusBadRequest, "FLK-0002")

	if r.str("message") != "invalid provider configuration ID" {
		t.Fatalf("message = %q", r.str("message"))
	}
}

func TestProviderConfigCreateErrors(t *testing.T) {
	e := newEnv(t, 0)
	e.tracerProvider("taken", "http://x")

	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{name: "unknown provider", body: map[string]any{"name": "a", "providerId": "nope", "config": map[string]any{}}, status: 404, code: "FLK-0294"},
		{name: "empty provider", body: map[string]any{"name": "a", "config": map[string]any{}}, status: 404, code: "FLK-0294"},
		{name: "schema violation", body: map[string]any{"name": "a", "providerId": "tracer", "config": map[string]any{"base_url": "http://x"}}, status: 500, code: "FLK-9999"},
		{name: "wrong type", body: map[string]any{"name": "a", "providerId": "tracer", "config": map[string]any{"base_url": 1, "api_key": "k"}}, status: 500, code: "FLK-9999"},
		{name: "missing config", body: map[string]any{"name": "a", "providerId": "http"}, status: 500, code: "FLK-9999"},
		{name: "missing name", body: map[string]any{"providerId": "http", "config": map[string]any{"base_url": "http://x"}}, status: 500, code: "FLK-9999"},
		{name: "duplicate name", body: map[string]any{"name": "taken", "providerId": "http", "config": map[string]any{"base_url": "http://x"}}, status: 409, code: "FLK-0291"},
		{name: "bad body", body: "{", status: 400, code: "FLK-0001"},
		{name: "http provider", body: map[string]any{"name": "h", "providerId": "http", "config": map[string]any{"base_url": "http://x", "timeout_ms": 500}}, status: 201},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(e.post("/v1/provider-configurations", tc.body), tc.status, tc.code)
		})
	}
}

func TestMaskSensitiveConfig(t *testing.T) {
	in := map[string]any{
		"api_key":       "sk-1234567890abcdef",
		"client_secret": "super-secret-value-xyz",
		"password":      "abcd",
		"token":         "1234567",
		"apiKey":        "key-value-abcdefgh",
		"secret":        12345,
		"base_url":      "https://api.example.com",
		"timeout":       30,
	}
	want := map[string]any{
		"api_key":       "****cdef",
		"client_secret": "****-xyz",
		"password":      "********",
		"token":         "********",
		"apiKey":        "****efgh",
		"secret":        "********",
		"base_url":      "https://api.example.com",
		"timeout":       30,
	}

	got := maskSensitiveConfig(in)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	if in["api_key"] != "sk-1234567890abcdef" {
		t.Error("masking modified the stored config")
	}

	if maskSensitiveConfig(nil) != nil {
		t.Error("nil config not kept nil")
	}
}

func TestListProviderConfigs(t *testing.T) {
	e := newEnv(t, 0)
	a := e.tracerProvider("a", "http://x/a")
	b := e.tracerProvider("b", "http://x/b")
	c := e.createProvider("c", "http", map[string]any{"base_url": "http://x/c"})
	e.expect(e.post("/v1/provider-configurations/"+b+"/disable", nil), http.StatusOK, "")

	r := e.get("/v1/provider-configurations?limit=2&sortOrder=ASC")
	e.expect(r, http.StatusOK, "")

	items := r.body["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["id"] != a || items[1].(map[string]any)["id"] != b || !r.body["hasMore"].(bool) {
		t.Fatalf("page 1 = %s", r.raw)
	}

	r = e.get("/v1/provider-configurations?limit=2&sortOrder=ASC&cursor=" + url.QueryEscape(r.str("nextCursor")))
	items = r.body["items"].([]any)

	if len(items) != 1 || items[0].(map[string]any)["id"] != c || r.body["hasMore"].(bool) || r.str("nextCursor") != "" {
		t.Fatalf("page 2 = %s", r.raw)
	}

	r = e.get("/v1/provider-configurations?status=disabled")
	if items = r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != b {
		t.Fatalf("status filter = %s", r.raw)
	}

	r = e.get("/v1/provider-configurations?providerId=http")
	if items = r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != c {
		t.Fatalf("providerId filter = %s", r.raw)
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "status=gone"} {
		e.expect(e.get("/v1/provider-configurations?"+q), http.StatusBadRequest, "FLK-0304")
	}

	e.expect(e.get("/v1/provider-configurations?cursor=!!!"), http.StatusInternalServerError, "FLK-9999")
}

func TestProviderConfigConnectivityTest(t *testing.T) {
	e := newEnv(t, 0)
	ok := e.tracerProvider("ok", "http://127.0.0.1:9/aml")
	down := e.tracerProvider("down", "http://127.0.0.1:9/sandbox/outage")
	midaz := e.createProvider("ledger", "midaz", map[string]any{
		"onboarding_base_url": "http://x/onb", "transaction_base_url": "http://x/tx",
		"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870",
	})

	before := e.get("/v1/provider-configurations/" + ok)

	r := e.post("/v1/provider-configurations/"+ok+"/test", nil)
	e.expect(r, http.StatusOK, "")

	if r.str("overallStatus") != "passed" || r.str("providerConfigId") != ok || len(r.body["stages"].([]any)) != 3 || r.str("completedAt") == "" {
		t.Fatalf("test = %s", r.raw)
	}

	if after := e.get("/v1/provider-configurations/" + ok); string(after.raw) != string(before.raw) {
		t.Fatalf("test mutated the configuration:\n%s\n%s", before.raw, after.raw)
	}

	if r = e.post("/v1/provider-configurations/"+down+"/test", nil); r.str("overallStatus") != "failed" {
		t.Fatalf("outage test = %s", r.raw)
	}

	e.expect(e.post("/v1/provider-configurations/"+midaz+"/test", nil), http.StatusUnprocessableEntity, "FLK-0340")
	e.expect(e.post("/v1/provider-configurations/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/test", nil), http.StatusNotFound, "FLK-0290")
	e.expect(e.post("/v1/provider-configurations/x/test", nil), http.StatusBadRequest, "FLK-0002")
}
