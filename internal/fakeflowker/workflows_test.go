package fakeflowker

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestWorkflowCRUD(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")

	r := e.post("/v1/workflows", webhookWorkflow("wf-crud", "/crud", "", pc))
	e.expect(r, http.StatusCreated, "")

	if r.body["version"] != "1.0.0" || r.body["status"] != "draft" || r.str("createdAt") == "" {
		t.Fatalf("create output = %s", r.raw)
	}

	id := r.str("workflowId")

	r = e.get("/v1/workflows/" + id)
	e.expect(r, http.StatusOK, "")

	if r.str("name") != "wf-crud" || r.str("metadata.team") != "qa" || len(r.body["nodes"].([]any)) != 2 {
		t.Fatalf("get = %s", r.raw)
	}

	// PUT replaces name/description/nodes/edges and merges metadata.
	r = e.do(req{method: "PUT", path: "/v1/workflows/" + id, body: map[string]any{
		"name": "wf-renamed", "description": "desc", "metadata": map[string]any{"rev": 2},
	}})
	e.expect(r, http.StatusOK, "")

	if r.str("name") != "wf-renamed" || r.str("description") != "desc" || r.str("metadata.team") != "qa" ||
		r.body["metadata"].(map[string]any)["rev"] != float64(2) {
		t.Fatalf("update = %s", r.raw)
	}

	if len(r.body["nodes"].([]any)) != 0 || len(r.body["edges"].([]any)) != 0 {
		t.Fatalf("update did not replace nodes/edges: %s", r.raw)
	}

	e.expect(e.get("/v1/workflows/"+id), http.StatusOK, "")

	r = e.do(req{method: "DELETE", path: "/v1/workflows/" + id})
	e.expect(r, http.StatusNoContent, "")

	if len(r.raw) != 0 || r.header.Get("Content-Type") != "" {
		t.Fatalf("204 carried a body or content type: %q %q", r.raw, r.header.Get("Content-Type"))
	}

	e.expect(e.get("/v1/workflows/"+id), http.StatusNotFound, "FLK-0100")
	e.expect(e.do(req{method: "DELETE", path: "/v1/workflows/" + id}), http.StatusNotFound, "FLK-0100")
	e.expect(e.do(req{method: "PUT", path: "/v1/workflows/" + id, body: map[string]any{"name": "x"}}), http.StatusNotFound, "FLK-0100")
	e.expect(e.do(req{method: "PUT", path: "/v1/workflows/bad", body: map[string]any{"name": "x"}}), http.StatusBadRequest, "FLK-0002")
	e.expect(e.do(req{method: "DELETE", path: "/v1/workflows/bad"}), http.StatusBadRequest, "FLK-0002")
}

func TestWorkflowValidation(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	midaz := e.createProvider("ledger", "midaz", map[string]any{
		"onboarding_base_url": "http://x/onb", "transaction_base_url": "http://x/tx",
		"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870",
	})
	disabled := e.tracerProvider("off", "http://127.0.0.1:9/off")
	e.expect(e.post("/v1/provider-configurations/"+disabled+"/disable", nil), http.StatusOK, "")

	executorNode := func(data map[string]any) map[string]any {
		return map[string]any{"name": "v", "nodes": []any{map[string]any{"id": "x", "type": "executor", "data": data}}}
	}

	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		msg    string
	}{
		{name: "missing name", body: map[string]any{}, status: 400, code: "FLK-0110", msg: "name is required"},
		{name: "name too long", body: map[string]any{"name": strings.Repeat("n", 101)}, status: 400, code: "FLK-0111"},
		{name: "name of 100 bytes", body: map[string]any{"name": strings.Repeat("n", 100)}, status: 201},
		{name: "duplicate name accepted", body: map[string]any{"name": strings.Repeat("n", 100)}, status: 201},
		{name: "edge to unknown node", body: map[string]any{"name": "e", "edges": []any{map[string]any{"id": "e", "source": "a", "target": "b"}}}, status: 400, code: "FLK-0115"},
		{name: "executor without executorId", body: executorNode(map[string]any{}), status: 400, code: "WORKFLOW_INVALID_EXECUTOR_CONFIG", msg: "executorId is required"},
		{name: "unknown executor", body: executorNode(map[string]any{"executorId": "nope"}), status: 404, code: "FLK-0104", msg: "referenced executor not found"},
		{name: "missing providerConfigId", body: executorNode(map[string]any{"executorId": "http"}), status: 400, code: "FLK-0150",
			msg: "node x: providerConfigId is required for executor nodes"},
		{name: "providerConfigId not a uuid", body: executorNode(map[string]any{"executorId": "http", "providerConfigId": "p"}), status: 400, code: "FLK-0150"},
		{name: "provider config not found", body: executorNode(map[string]any{"executorId": "tracer.validate-transaction", "providerConfigId": "50205d80-bb2d-48b0-a87d-0f298dd7bdc6"}),
			status: 400, code: "FLK-0150", msg: "node x: provider configuration 50205d80-bb2d-48b0-a87d-0f298dd7bdc6 not found"},
		{name: "provider config disabled", body: executorNode(map[string]any{"executorId": "tracer.validate-transaction", "providerConfigId": disabled}),
			status: 400, code: "FLK-0150", msg: "node x: provider configuration " + disabled + " is not active"},
		{name: "provider mismatch", body: executorNode(map[string]any{"executorId": "tracer.validate-transaction", "providerConfigId": midaz}),
			status: 400, code: "FLK-0151", msg: fmt.Sprintf("node x: provider configuration %s belongs to provider \"midaz\" but executor tracer.validate-transaction belongs to provider \"tracer\"", midaz)},
		{name: "valid executor node", body: executorNode(map[string]any{"executorId": "tracer.validate-transaction", "providerConfigId": pc}), status: 201},
		{name: "node types are not validated", body: map[string]any{"name": "t", "nodes": []any{map[string]any{"id": "x", "type": "whatever"}}}, status: 201},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.post("/v1/workflows", tc.body)
			e.expect(r, tc.status, tc.code)

			if tc.msg != "" && r.str("message") != tc.msg {
				t.Fatalf("message = %q, want %q", r.str("message"), tc.msg)
			}
		})
	}
}

func TestWorkflowStatusMachine(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")

	actions := []string{"activate", "deactivate", "draft"}
	// next[state][action] is the resulting state; "" means 422 FLK-0102.
	next := map[string]map[string]string{
		"draft":    {"activate": "active", "deactivate": "", "draft": ""},
		"active":   {"activate": "", "deactivate": "inactive", "draft": ""},
		"inactive": {"activate": "", "deactivate": "", "draft": "draft"},
	}
	// reach brings a fresh draft workflow to a state.
	reach := map[string][]string{"draft": nil, "active": {"activate"}, "inactive": {"activate", "deactivate"}}

	n := 0

	for state, path := range reach {
		for _, action := range actions {
			t.Run(state+"/"+action, func(t *testing.T) {
				e.t = t
				n++
				id := e.activeOrDraft(fmt.Sprintf("sm-%d", n), fmt.Sprintf("/sm/%d", n), pc, path)

				r := e.post("/v1/workflows/"+id+"/"+action, nil)

				want := next[state][action]
				if want == "" {
					e.expect(r, http.StatusUnprocessableEntity, "FLK-0102")

					if r.str("message") != "invalid workflow status transition" || r.str("title") != "Unprocessable Entity" {
						t.Fatalf("body = %s", r.raw)
					}

					want = state
				} else {
					e.expect(r, http.StatusOK, "")

					if r.str("status") != want {
						t.Fatalf("status after %s = %q, want %q", action, r.str("status"), want)
					}
				}

				if got := e.get("/v1/workflows/" + id).str("status"); got != want {
					t.Fatalf("stored status = %q, want %q", got, want)
				}

				// Update only in draft; delete only in draft or inactive.
				u := e.do(req{method: "PUT", path: "/v1/workflows/" + id, body: map[string]any{"name": "renamed"}})
				if want == "draft" {
					e.expect(u, http.StatusOK, "")
				} else {
					e.expect(u, http.StatusUnprocessableEntity, "FLK-0103")
				}

				d := e.do(req{method: "DELETE", path: "/v1/workflows/" + id})
				if want == "active" {
					e.expect(d, http.StatusUnprocessableEntity, "FLK-0103")
				} else {
					e.expect(d, http.StatusNoContent, "")
				}
			})
		}
	}

	e.t = t
	e.expect(e.post("/v1/workflows/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/activate", nil), http.StatusNotFound, "FLK-0100")
	e.expect(e.post("/v1/workflows/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/deactivate", nil), http.StatusNotFound, "FLK-0100")
	e.expect(e.post("/v1/workflows/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/draft", nil), http.StatusNotFound, "FLK-0100")
	e.expect(e.post("/v1/workflows/x/activate", nil), http.StatusBadRequest, "FLK-0002")
}

// activeOrDraft creates a webhook workflow and applies the actions.
func (e *testEnv) activeOrDraft(name, path, pc string, actions []string) string {
	e.t.Helper()

	r := e.post("/v1/workflows", webhookWorkflow(name, path, "", pc))
	e.expect(r, http.StatusCreated, "")

	id := r.str("workflowId")
	for _, a := range actions {
		e.expect(e.post("/v1/workflows/"+id+"/"+a, nil), http.StatusOK, "")
	}

	return id
}

func TestActivationValidation(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")

	create := func(body map[string]any) string {
		r := e.post("/v1/workflows", body)
		e.expect(r, http.StatusCreated, "")

		return r.str("workflowId")
	}

	noNodes := create(map[string]any{"name": "empty"})
	e.expect(e.post("/v1/workflows/"+noNodes+"/activate", nil), http.StatusUnprocessableEntity, "FLK-0112")

	noTrigger := create(map[string]any{"name": "no-trigger", "nodes": []any{map[string]any{"id": "a", "type": "action"}}})
	r := e.post("/v1/workflows/"+noTrigger+"/activate", nil)
	e.expect(r, http.StatusUnprocessableEntity, "FLK-0116")

	if r.str("message") != "workflow must have a trigger node to activate" {
		t.Fatalf("message = %q", r.str("message"))
	}

	// A provider configuration disabled after creation blocks activation.
	pcOff := e.tracerProvider("later-off", "http://127.0.0.1:9/x")
	wf := create(webhookWorkflow("later", "/later", "", pcOff))
	e.expect(e.post("/v1/provider-configurations/"+pcOff+"/disable", nil), http.StatusOK, "")

	r = e.post("/v1/workflows/"+wf+"/activate", nil)
	e.expect(r, http.StatusBadRequest, "FLK-0150")

	if want := fmt.Sprintf("node screen: provider configuration %s is not active (status: disabled)", pcOff); r.str("message") != want {
		t.Fatalf("message = %q, want %q", r.str("message"), want)
	}

	// The same webhook path cannot be registered twice.
	first := e.activeWorkflow("first", "/dup/path", "", pc)
	second := create(webhookWorkflow("second", "/dup/path/", "", pc))

	r = e.post("/v1/workflows/"+second+"/activate", nil)
	e.expect(r, http.StatusBadRequest, "FLK-0360")

	if want := "FLK-0360: path POST /dup/path/ already registered by workflow " + first; r.str("message") != want {
		t.Fatalf("message = %q, want %q", r.str("message"), want)
	}

	if got := e.get("/v1/workflows/" + second).str("status"); got != "draft" {
		t.Fatalf("failed activation changed status to %q", got)
	}

	// Once the first one is deactivated the path is free.
	e.expect(e.post("/v1/workflows/"+first+"/deactivate", nil), http.StatusOK, "")
	e.expect(e.post("/v1/workflows/"+second+"/activate", nil), http.StatusOK, "")
}

func TestCloneWorkflow(t *testing.T) {
	e := newEnv(t, 0)
	pc := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	src := e.activeWorkflow("src", "/clone-src", "tok", pc)

	r := e.post("/v1/workflows/"+src+"/clone", map[string]any{"name": "copy"})
	e.expect(r, http.StatusCreated, "")

	if r.str("status") != "draft" || r.str("version") != "1.0.0" || r.str("workflowId") == src {
		t.Fatalf("clone output = %s", r.raw)
	}

	c := e.get("/v1/workflows/" + r.str("workflowId"))
	if c.str("name") != "copy" || len(c.body["nodes"].([]any)) != 2 || len(c.body["edges"].([]any)) != 1 {
		t.Fatalf("clone = %s", c.raw)
	}

	if _, ok := c.body["metadata"]; ok {
		t.Fatalf("clone copied metadata: %s", c.raw)
	}

	e.expect(e.post("/v1/workflows/"+src+"/clone", map[string]any{}), http.StatusBadRequest, "FLK-0110")
	e.expect(e.post("/v1/workflows/50205d80-bb2d-48b0-a87d-0f298dd7bdc6/clone", map[string]any{"name": "x"}), http.StatusNotFound, "FLK-0100")
	e.expect(e.do(req{method: "POST", path: "/v1/workflows/" + src + "/clone", body: "{", ctype: "application/json"}), http.StatusBadRequest, "FLK-0001")
}

func TestWorkflowFromTemplate(t *testing.T) {
	e := newEnv(t, 0)
	tracer := e.tracerProvider("aml", "http://127.0.0.1:9/aml")
	midaz := e.createProvider("ledger", "midaz", map[string]any{
		"onboarding_base_url": "http://x/onb", "transaction_base_url": "http://x/tx",
		"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870",
	})

	params := func(kv ...string) map[string]any {
		p := map[string]any{"workflowName": "tpl", "tracerProviderConfigId": tracer, "midazProviderConfigId": midaz}
		for i := 0; i+1 < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}

		return p
	}

	r := e.post("/v1/workflows/from-template", map[string]any{"templateId": templateID, "params": params("webhookPath", "/settle")})
	e.expect(r, http.StatusCreated, "")

	w := e.get("/v1/workflows/" + r.str("workflowId"))
	if w.str("metadata.templateId") != templateID || len(w.body["nodes"].([]any)) != 4 || len(w.body["edges"].([]any)) != 3 {
		t.Fatalf("template workflow = %s", w.raw)
	}

	if !strings.Contains(string(w.raw), `"path":"/settle"`) || !strings.Contains(string(w.raw), `"sourceHandle":"true"`) {
		t.Fatalf("template workflow misses params or handles: %s", w.raw)
	}

	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{name: "unknown template", body: map[string]any{"templateId": "nope", "params": params()}, status: 404, code: "FLK-0240"},
		{name: "missing params", body: map[string]any{"templateId": templateID}, status: 400, code: "FLK-0242"},
		{name: "missing required param", body: map[string]any{"templateId": templateID, "params": map[string]any{"workflowName": "x"}}, status: 400, code: "FLK-0242"},
		{name: "bad method", body: map[string]any{"templateId": templateID, "params": params("webhookMethod", "GET")}, status: 400, code: "FLK-0242"},
		{name: "swapped configs", body: map[string]any{"templateId": templateID, "params": params("tracerProviderConfigId", midaz, "midazProviderConfigId", tracer)}, status: 400, code: "FLK-0151"},
		{name: "unknown config", body: map[string]any{"templateId": templateID, "params": params("tracerProviderConfigId", "50205d80-bb2d-48b0-a87d-0f298dd7bdc6")}, status: 400, code: "FLK-0150"},
		{name: "empty provider id", body: map[string]any{"templateId": templateID, "params": params("tracerProviderConfigId", "")}, status: 500, code: "FLK-9999"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(e.post("/v1/workflows/from-template", tc.body), tc.status, tc.code)
		})
	}
}

func TestListWorkflows(t *testing.T) {
	e := newEnv(t, 0)

	var ids []string

	for i := range 5 {
		r := e.post("/v1/workflows", map[string]any{"name": fmt.Sprintf("wf-%d", 4-i)})
		e.expect(r, http.StatusCreated, "")
		ids = append(ids, r.str("workflowId"))
	}

	// Default: createdAt DESC, pages of 2.
	var got []string

	next := ""

	for page := 0; ; page++ {
		path := "/v1/workflows?limit=2"
		if next != "" {
			path += "&cursor=" + url.QueryEscape(next)
		}

		r := e.get(path)
		e.expect(r, http.StatusOK, "")

		for _, it := range r.body["items"].([]any) {
			got = append(got, it.(map[string]any)["id"].(string))
		}

		next = r.str("nextCursor")
		if hasMore := r.body["hasMore"].(bool); hasMore != (next != "") {
			t.Fatalf("hasMore %v with nextCursor %q", hasMore, next)
		}

		if next == "" {
			break
		}

		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}

	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}

	r := e.get("/v1/workflows?sortBy=name&sortOrder=ASC&limit=abc")
	e.expect(r, http.StatusOK, "")

	items := r.body["items"].([]any)
	if len(items) != 5 || items[0].(map[string]any)["name"] != "wf-0" {
		t.Fatalf("name ASC = %s", r.raw)
	}

	e.expect(e.post("/v1/workflows/"+ids[0]+"/activate", nil), http.StatusUnprocessableEntity, "FLK-0112")

	r = e.get("/v1/workflows?status=active")
	if len(r.body["items"].([]any)) != 0 {
		t.Fatalf("status filter = %s", r.raw)
	}

	r = e.get("/v1/workflows?cursor=!!!")
	e.expect(r, http.StatusBadRequest, "INVALID_CURSOR")

	if r.str("title") != "Bad Request" || r.str("message") != "invalid cursor format" {
		t.Fatalf("bad cursor body = %s", r.raw)
	}

	bad := encodeCursor(cursor{ID: ids[0], SortValue: "yesterday", SortBy: "createdAt", SortOrder: "DESC", PointsNext: true})
	e.expect(e.get("/v1/workflows?cursor="+url.QueryEscape(bad)), http.StatusBadRequest, "INVALID_CURSOR")
}
