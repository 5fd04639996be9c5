package fakeflowker

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestCatalog(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://x")

	r := e.get("/v1/catalog/executors")
	e.expect(r, http.StatusOK, "")

	if len(r.list) != 7 {
		t.Fatalf("executors = %s", r.raw)
	}

	for _, it := range r.list {
		id := it.(map[string]any)["id"].(string)
		d := e.get("/v1/catalog/executors/" + id)
		e.expect(d, http.StatusOK, "")

		if d.str("schema") == "" || d.str("providerId") == "" {
			t.Fatalf("executor %s = %s", id, d.raw)
		}
	}

	r = e.get("/v1/catalog/providers/tracer")
	e.expect(r, http.StatusOK, "")

	var schema map[string]any
	if err := json.Unmarshal([]byte(r.str("configSchema")), &schema); err != nil || r.str("version") != "v1" {
		t.Fatalf("configSchema is not a JSON string: %v %s", err, r.raw)
	}

	if r = e.get("/v1/catalog/providers"); len(r.list) != 4 {
		t.Fatalf("providers = %s", r.raw)
	}

	if r = e.get("/v1/catalog/providers/midaz/executors"); len(r.list) != 4 {
		t.Fatalf("midaz executors = %s", r.raw)
	}

	if r = e.get("/v1/catalog/triggers"); len(r.list) != 1 {
		t.Fatalf("triggers = %s", r.raw)
	}

	e.expect(e.get("/v1/catalog/triggers/webhook"), http.StatusOK, "")

	if r = e.get("/v1/catalog/templates"); len(r.list) != 1 || r.list[0].(map[string]any)["id"] != templateID {
		t.Fatalf("templates = %s", r.raw)
	}

	r = e.get("/v1/catalog/templates/" + templateID)
	e.expect(r, http.StatusOK, "")

	var ps map[string]any
	if err := json.Unmarshal([]byte(r.str("paramSchema")), &ps); err != nil {
		t.Fatalf("paramSchema: %v", err)
	}

	opts, _ := getPath(ps, "properties.tracerProviderConfigId.oneOf")
	if list, _ := opts.([]any); len(list) != 1 || list[0].(map[string]any)["const"] != pc {
		t.Fatalf("tracer options = %v", opts)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{name: "unknown executor", method: "GET", path: "/v1/catalog/executors/nope", status: 404, code: "FLK-0200"},
		{name: "unknown trigger", method: "GET", path: "/v1/catalog/triggers/cron", status: 404, code: "FLK-0210"},
		{name: "unknown provider", method: "GET", path: "/v1/catalog/providers/nope", status: 404, code: "FLK-0230"},
		{name: "unknown provider executors", method: "GET", path: "/v1/catalog/providers/nope/executors", status: 404, code: "FLK-0230"},
		{name: "unknown template", method: "GET", path: "/v1/catalog/templates/nope", status: 404, code: "FLK-0240"},
		{name: "valid executor config", method: "POST", path: "/v1/catalog/executors/http/validate", body: map[string]any{"config": map[string]any{"method": "GET", "url": "http://x"}}, status: 200},
		{name: "invalid executor config", method: "POST", path: "/v1/catalog/executors/http/validate", body: map[string]any{"config": map[string]any{"method": "FETCH"}}, status: 400, code: "FLK-0201"},
		{name: "extra executor property", method: "POST", path: "/v1/catalog/executors/http/validate", body: map[string]any{"config": map[string]any{"method": "GET", "url": "u", "x": 1}}, status: 400, code: "FLK-0201"},
		{name: "validate unknown executor", method: "POST", path: "/v1/catalog/executors/nope/validate", body: map[string]any{}, status: 404, code: "FLK-0200"},
		{name: "validate executor bad body", method: "POST", path: "/v1/catalog/executors/http/validate", body: "{", status: 400, code: "FLK-0001"},
		{name: "valid template params", method: "POST", path: "/v1/catalog/templates/" + templateID + "/validate", body: map[string]any{"params": map[string]any{"workflowName": "a", "tracerProviderConfigId": pc, "midazProviderConfigId": pc}}, status: 200},
		{name: "invalid template params", method: "POST", path: "/v1/catalog/templates/" + templateID + "/validate", body: map[string]any{"params": map[string]any{}}, status: 400, code: "FLK-0242"},
		{name: "validate unknown template", method: "POST", path: "/v1/catalog/templates/nope/validate", body: map[string]any{}, status: 404, code: "FLK-0240"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.do(req{method: tc.method, path: tc.path, body: tc.body})
			e.expect(r, tc.status, tc.code)

			if tc.status == 200 && tc.method == "POST" && r.body["valid"] != true {
				t.Fatalf("validate = %s", r.raw)
			}
		})
	}

	e.t = t

	// The validate routes change nothing.
	if r = e.get("/v1/workflows"); len(r.body["items"].([]any)) != 0 {
		t.Fatalf("validate created something: %s", r.raw)
	}
}

func TestValidateSchema(t *testing.T) {
	s := mustSchema(`{"type":"object","required":["a","b"],"properties":{"a":{"type":"string","minLength":2,"maxLength":3},
		"n":{"type":"integer","minimum":1,"maximum":5},"l":{"type":"array","items":{"type":"string"}},"e":{"enum":["x","y"]}},
		"additionalProperties":{"type":"boolean"}}`)

	tests := []struct {
		name string
		v    any
		ok   bool
	}{
		{name: "valid", v: map[string]any{"a": "ab", "b": true, "n": float64(3), "l": []any{"x"}, "e": "x", "extra": true}, ok: true},
		{name: "not an object", v: []any{}},
		{name: "null", v: nil},
		{name: "missing", v: map[string]any{"a": "ab"}},
		{name: "too short", v: map[string]any{"a": "a", "b": true}},
		{name: "too long", v: map[string]any{"a": "abcd", "b": true}},
		{name: "not an integer", v: map[string]any{"a": "ab", "b": true, "n": 1.5}},
		{name: "below minimum", v: map[string]any{"a": "ab", "b": true, "n": float64(0)}},
		{name: "above maximum", v: map[string]any{"a": "ab", "b": true, "n": float64(6)}},
		{name: "bad item", v: map[string]any{"a": "ab", "b": true, "l": []any{1}}},
		{name: "bad enum", v: map[string]any{"a": "ab", "b": true, "e": "z"}},
		{name: "bad additional", v: map[string]any{"a": "ab", "b": true, "extra": "s"}},
	}

	for _, tc := range tests {
		err := validateSchema(s, "schema.json", tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
