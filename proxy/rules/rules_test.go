package rules

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
)

const wid = "c5160020-5d68-4a05-b984-cef31de6428a"

func table(t *testing.T, cfg ...config.Rule) *Table {
	t.Helper()
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestMatchFollowsFlowkersRouter(t *testing.T) {
	tb := table(t)
	tests := []struct {
		method, path string
		rule         string // "" = no rule
		params       map[string]string
	}{
		{"POST", "/v1/workflows", "workflow.create", nil},
		{"POST", "/v1/workflows/", "workflow.create", nil},
		{"POST", "/V1/Workflows/", "workflow.create", nil},
		{"POST", "/v1/workflows///", "workflow.create", nil}, // Fiber strips every trailing slash
		{"post", "/v1/workflows", "", nil},                   // Fiber: 400 Invalid http method (methods are case-sensitive)
		{"POST", "//v1/workflows", "", nil},                  // Fiber: 404, not executed
		{"POST", "/v1//workflows", "", nil},                  // Fiber: 404
		{"POST", "/v1/work%66lows", "", nil},                 // not decoded by Fiber: 404
		{"POST", "/v1/workflows%2F", "", nil},                // idem
		{"POST", "/v1/./workflows", "", nil},                 // dot segments are not resolved
		{"POST", "/v1/workflows/from-template", "workflow.create_from_template", nil},
		{"POST", "/V1/WORKFLOWS/FROM-TEMPLATE/", "workflow.create_from_template", nil},
		{"PUT", "/v1/workflows/" + wid, "workflow.update", map[string]string{"id": wid}},
		{"PUT", "/v1/workflows/" + strings.ToUpper(wid), "workflow.update", map[string]string{"id": strings.ToUpper(wid)}},
		{"DELETE", "/v1/workflows/" + wid + "/", "workflow.delete", map[string]string{"id": wid}},
		{"POST", "/v1/workflows/" + wid + "/clone", "workflow.clone", map[string]string{"id": wid}},
		{"POST", "/v1/workflows/" + wid + "/ACTIVATE", "workflow.activate", map[string]string{"id": wid}},
		{"POST", "/v1/workflows/" + wid + "/deactivate", "workflow.deactivate", nil},
		{"POST", "/v1/workflows/" + wid + "/draft", "workflow.draft", nil},
		{"POST", "/v1/workflows/%7B" + wid + "%7D/activate", "workflow.activate", map[string]string{"id": "%7B" + wid + "%7D"}},
		{"POST", "/v1/workflows/" + wid + "/executions", "execution.start", map[string]string{"workflowId": wid}},
		{"PUT", "/v1/workflows/" + wid + "/executions", "", nil},
		{"POST", "/v1/webhooks/sandbox/payouts/screen", "webhook.trigger", map[string]string{"*": "/sandbox/payouts/screen"}},
		{"GET", "/v1/webhooks/Sandbox/Payouts", "webhook.trigger", map[string]string{"*": "/Sandbox/Payouts"}},
		{"DELETE", "/V1/WEBHOOKS/x", "webhook.trigger", map[string]string{"*": "/x"}},
		{"POST", "/v1/webhooks", "webhook.trigger", map[string]string{"*": "/"}},
		{"GET", "/v1/executions/" + wid, "execution.status", map[string]string{"id": wid}},
		{"GET", "/v1/executions/" + wid + "/results", "", nil},
		{"POST", "/v1/provider-configurations", "provider_config.create", nil},
		{"PATCH", "/v1/provider-configurations/" + wid, "provider_config.update", nil},
		{"DELETE", "/v1/provider-configurations/not-a-uuid", "provider_config.delete", map[string]string{"id": "not-a-uuid"}},
		{"POST", "/v1/provider-configurations/" + wid + "/disable", "provider_config.disable", nil},
		{"POST", "/v1/provider-configurations/" + wid + "/enable", "provider_config.enable", nil},
		{"POST", "/v1/provider-configurations/" + wid + "/test", "provider_config.test", nil},
		{"PATCH", "/v1/executors/" + wid, "executor_config.update", nil},
		{"DELETE", "/v1/executors/" + wid, "executor_config.delete", nil},
		{"POST", "/v1/catalog/executors/http/validate", "catalog.executor_validate", nil},
		{"POST", "/v1/catalog/templates/tracer-midaz-validation/validate", "catalog.template_validate", nil},
		{"GET", "/v1/workflows", "", nil},
		{"POST", "/v1/unknown", "", nil},
		{"POST", "", "", nil},
		{"POST", "v1/workflows", "", nil},
	}
	for _, tc := range tests {
		m := tb.Match(tc.method, tc.path)
		got := ""
		if m != nil {
			got = m.Rule.Name
		}
		if got != tc.rule {
			t.Errorf("%s %s: matched %q, want %q", tc.method, tc.path, got, tc.rule)
			continue
		}
		for k, v := range tc.params {
			if m.Param(k) != v {
				t.Errorf("%s %s: param %s = %q, want %q", tc.method, tc.path, k, m.Param(k), v)
			}
		}
	}
}

func TestEveryMutatingContractRouteHasARule(t *testing.T) {
	tb := table(t)
	// flowker-contract.md §1.5: every route marked M (mutating), and the two non-mutating POSTs.
	routes := []string{
		"POST /v1/workflows", "POST /v1/workflows/from-template", "PUT /v1/workflows/{id}", "DELETE /v1/workflows/{id}",
		"POST /v1/workflows/{id}/clone", "POST /v1/workflows/{id}/activate", "POST /v1/workflows/{id}/deactivate",
		"POST /v1/workflows/{id}/draft", "POST /v1/workflows/{id}/executions", "POST /v1/webhooks/a/b",
		"PUT /v1/webhooks/a", "POST /v1/provider-configurations", "PATCH /v1/provider-configurations/{id}",
		"DELETE /v1/provider-configurations/{id}", "POST /v1/provider-configurations/{id}/disable",
		"POST /v1/provider-configurations/{id}/enable", "PATCH /v1/executors/{id}", "DELETE /v1/executors/{id}",
	}
	for _, r := range routes {
		method, path, _ := strings.Cut(strings.ReplaceAll(r, "{id}", wid), " ")
		m := tb.Match(method, path)
		if m == nil || !m.Rule.Audit {
			t.Errorf("%s: no audited rule", r)
		}
	}
	for _, r := range []string{"POST /v1/provider-configurations/{id}/test", "POST /v1/catalog/executors/http/validate", "POST /v1/catalog/templates/t/validate"} {
		method, path, _ := strings.Cut(strings.ReplaceAll(r, "{id}", wid), " ")
		if m := tb.Match(method, path); m == nil || m.Rule.Audit {
			t.Errorf("%s: must be matched and not audited", r)
		}
	}
}

func TestConfiguredRulesOverrideAndExtend(t *testing.T) {
	f := false
	tb := table(t,
		config.Rule{Name: "quiet-delete", Method: "DELETE", Path: "/v1/workflows/{id}", Audit: &f},
		config.Rule{Name: "custom", Method: "POST", Path: "/v1/custom/{thing}/go", EventType: chain.WorkflowUpdated,
			Action: chain.ActionUpdate, ResourceType: chain.ResourceWorkflow, ResourceID: []string{"path:thing"},
			Metadata: map[string][]string{"workflow.name": {"request:name"}}, FailMode: config.FailOpen},
	)
	if m := tb.Match("DELETE", "/v1/workflows/"+wid); m == nil || m.Rule.Name != "quiet-delete" || m.Rule.Audit {
		t.Fatalf("override not applied: %+v", m)
	}
	n := 0
	for _, r := range tb.Rules() {
		if r.Method == "DELETE" && r.Path == "/v1/workflows/{id}" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("replaced built-in still present (%d rules)", n)
	}
	m := tb.Match("POST", "/v1/custom/x/go")
	if m == nil || m.Rule.Name != "custom" || m.Param("thing") != "x" || m.Rule.FailMode != config.FailOpen {
		t.Fatalf("custom rule: %+v", m)
	}
}

func TestMutating(t *testing.T) {
	for _, tc := range []struct {
		method, origin, acrm string
		want                 bool
	}{{"GET", "", "", false}, {"HEAD", "", "", false}, {"POST", "", "", true}, {"PUT", "", "", true}, {"PATCH", "", "", true},
		{"DELETE", "", "", true}, {"OPTIONS", "https://a.example", "POST", false}, {"OPTIONS", "", "", true},
		// Without Origin, Fiber's CORS middleware passes the request on to the routes.
		{"OPTIONS", "", "POST", true}, {"OPTIONS", "https://a.example", "", true},
		{"PROPFIND", "", "", true}} {
		r := httptest.NewRequest(tc.method, "/v1/x", nil)
		if tc.acrm != "" {
			r.Header.Set("Access-Control-Request-Method", tc.acrm)
		}
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := Mutating(r); got != tc.want {
			t.Errorf("%s (origin %q, preflight %q): %v, want %v", tc.method, tc.origin, tc.acrm, got, tc.want)
		}
	}
	_ = http.MethodGet
}

func TestParseSourcePaths(t *testing.T) {
	for in, want := range map[string]string{
		"request:name":                 "[{name false}]",
		"request:params[workflowName]": "[{params false} {workflowName true}]",
		"response:a.b[c][d].e":         "[{a false} {b false} {c true} {d true} {e false}]",
	} {
		s, err := ParseSource(in)
		if err != nil || fmt.Sprint(s.Path) != want {
			t.Errorf("ParseSource(%q) = %v %v, want %s", in, s.Path, err, want)
		}
	}
	for _, bad := range []string{"request:", "request:a..b", "request:a[b", "request:[x]"} {
		if _, err := ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) accepted", bad)
		}
	}
}

func TestCanonicalID(t *testing.T) {
	for in, want := range map[string]string{
		wid:                      wid,
		strings.ToUpper(wid):     wid,
		"{" + wid + "}":          wid,
		"urn:uuid:" + wid:        wid,
		"not-a-uuid":             "not-a-uuid",
		strings.Repeat("x", 300): strings.Repeat("x", 255),
	} {
		if got := CanonicalID(in); got != want {
			t.Errorf("CanonicalID(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	tb, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"/v1/workflows", "/V1/Workflows/", "//v1/workflows", "/v1/webhooks/a/b/", "/v1/workflows/x/activate", "/", "", "/%zz", "/v1/workflows/\x00/clone"} {
		f.Add("POST", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		m := tb.Match(method, path)
		if m == nil {
			return
		}
		// A match never depends on the case of the path or on trailing slashes.
		m2 := tb.Match(method, strings.ToUpper(path)+"/")
		if m2 == nil || m2.Rule != m.Rule {
			t.Fatalf("%s %q matched %s, but the upper-cased path with a trailing slash did not", method, path, m.Rule.Name)
		}
		// Parameters are raw segments of the path.
		for k, v := range m.Params {
			if k != "*" && (v == "" || strings.Contains(v, "/") || !strings.Contains(path, v)) {
				t.Fatalf("%s %q: bad param %s=%q", method, path, k, v)
			}
		}
	})
}

// Only ASCII letters fold, as in Flowker's router: a Unicode look-alike (the Kelvin sign for k)
// is another path.
func TestMatchFoldsASCIIOnly(t *testing.T) {
	tb, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := tb.Match("POST", "/V1/WORKFLOWS/"); m == nil || m.Rule.Name != "workflow.create" {
		t.Fatalf("ASCII case: %+v", m)
	}
	if m := tb.Match("POST", "/v1/wor\u212aflows"); m != nil {
		t.Fatalf("the Kelvin sign matched rule %s", m.Rule.Name)
	}
}

// TestConfiguredMetadataInKeyOrder checks that a configured rule's metadata fields come out in
// the order of their keys, whatever the map's iteration order.
func TestConfiguredMetadataInKeyOrder(t *testing.T) {
	keys := []string{"zeta", "alpha", "workflow.name", "Beta", "alpha.b", "m"}
	meta := map[string][]string{}
	for _, k := range keys {
		meta[k] = []string{"request:name"}
	}
	tb := table(t, config.Rule{Name: "meta", Method: "POST", Path: "/v1/meta/{thing}", Metadata: meta})
	m := tb.Match("POST", "/v1/meta/x")
	if m == nil {
		t.Fatal("configured rule not matched")
	}
	var got []string
	for _, f := range m.Rule.Metadata {
		got = append(got, f.Key)
	}
	want := []string{"Beta", "alpha", "alpha.b", "m", "workflow.name", "zeta"}
	if !slices.Equal(got, want) {
		t.Fatalf("metadata keys %q, want %q", got, want)
	}
}
