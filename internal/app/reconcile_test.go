package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// The Flowker recovery is tested against: the fake by default, or a running real Flowker when
// REAL_FLOWKER_URL is set (its API key in REAL_FLOWKER_KEY; see
// docs/FLOWKER-BEHAVIOUR.md for how to run one). Every fixture is made through Flowker's HTTP API,
// so the same cases run against both.
const (
	realFlowkerURLEnv = "REAL_FLOWKER_URL"
	realFlowkerKeyEnv = "REAL_FLOWKER_KEY"
	// Two executor configurations of the real Flowker (unconfigured or configured) the test may
	// change and delete: Flowker has no route that creates them.
	realFlowkerExecutorsEnv = "REAL_FLOWKER_EXECUTOR_IDS"
	fakeFlowkerKey          = "reconcile-test-key"
)

type testFlowker struct {
	t    *testing.T
	base string
	key  string
	fake *fakeflowker.Server // nil: the real Flowker
	run  string              // makes names unique across runs against one real Flowker
}

func startTestFlowker(t *testing.T) *testFlowker {
	t.Helper()
	run := uuid.NewString()[:8]
	if u := os.Getenv(realFlowkerURLEnv); u != "" {
		t.Logf("recovery runs against the real Flowker at %s", u)
		return &testFlowker{t: t, base: strings.TrimRight(u, "/"), key: os.Getenv(realFlowkerKeyEnv), run: run}
	}
	fake := fakeflowker.New(fakeflowker.Options{APIKey: fakeFlowkerKey, ExecutionDelay: time.Hour})
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	return &testFlowker{t: t, base: srv.URL, key: fakeFlowkerKey, fake: fake, run: run}
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func (f *testFlowker) call(method, path string, body any, hdr ...string) answer {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-Key", f.key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// must calls Flowker and fails the test unless it answers want.
func (f *testFlowker) must(want int, method, path string, body any, hdr ...string) answer {
	f.t.Helper()
	a := f.call(method, path, body, hdr...)
	if a.status != want {
		f.t.Fatalf("%s %s: %d %s (want %d)", method, path, a.status, a.raw, want)
	}
	return a
}

func (f *testFlowker) name(s string) string { return "rec-" + f.run + "-" + s }

// workflow creates a draft workflow; with a webhook path it has a webhook trigger (activatable).
func (f *testFlowker) workflow(name, webhook string) string {
	f.t.Helper()
	body := map[string]any{"name": f.name(name)}
	if webhook != "" {
		body["nodes"] = []any{map[string]any{"id": "t", "type": "trigger", "name": "trigger", "position": map[string]any{"x": 0, "y": 0},
			"data": map[string]any{"triggerType": "webhook", "path": webhook, "method": "POST"}}}
	}
	return f.must(http.StatusCreated, "POST", "/v1/workflows", body).str("workflowId")
}

func (f *testFlowker) activeWorkflow(name, webhook string) string {
	f.t.Helper()
	id := f.workflow(name, webhook)
	f.must(http.StatusOK, "POST", "/v1/workflows/"+id+"/activate", nil)
	return id
}

func (f *testFlowker) providerConfig(name string) string {
	f.t.Helper()
	return f.must(http.StatusCreated, "POST", "/v1/provider-configurations", map[string]any{"name": f.name(name), "providerId": "tracer",
		"config": map[string]any{"base_url": "http://127.0.0.1:9/tracer", "api_key": "k-" + name}}).str("id")
}

func (f *testFlowker) midazConfig(name string) string {
	f.t.Helper()
	return f.must(http.StatusCreated, "POST", "/v1/provider-configurations", map[string]any{"name": f.name(name), "providerId": "midaz",
		"config": map[string]any{"onboarding_base_url": "http://127.0.0.1:9/onb", "transaction_base_url": "http://127.0.0.1:9/tx",
			"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870"}}).str("id")
}

func (f *testFlowker) start(workflowID, key string) string {
	f.t.Helper()
	a := f.call("POST", "/v1/workflows/"+workflowID+"/executions", map[string]any{"inputData": map[string]any{}}, "Idempotency-Key", key)
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		f.t.Fatalf("start %s: %d %s", workflowID, a.status, a.raw)
	}
	return a.str("executionId")
}

func (f *testFlowker) hook(path, key string) string {
	f.t.Helper()
	var hdr []string
	if key != "" {
		hdr = []string{"Idempotency-Key", key}
	}
	a := f.call("POST", "/v1/webhooks"+path, map[string]any{"n": 1}, hdr...)
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		f.t.Fatalf("webhook %s: %d %s", path, a.status, a.raw)
	}
	return a.str("executionId")
}

func intentFor(start time.Time, det proxy.IntentDetail, meta map[string]string) journal.Intent {
	id := uuid.Must(uuid.NewV7()).String()
	detail, _ := json.Marshal(det)
	m, _ := json.Marshal(meta)
	if meta == nil {
		m = []byte("{}")
	}
	return journal.Intent{ID: id, Start: start, Detail: detail, Draft: journal.Draft{EventID: id, Metadata: m}}
}

type recoveryCase struct {
	name   string
	intent journal.Intent
	// want
	result   string // chain.ResultSuccess, ResultFailed or ResultUnknown
	resource string // for SUCCESS: the resource learned ("" when the request names it)
	says     string // a substring of the evidence or reason
}

// TestRecoveryLearnsEveryOutcome: for every rule whose outcome Flowker's API shows, an applied
// request reconciles as SUCCESS (with the resource it made) and one that was not applied as
// FAILED; what cannot be learned stays unknown with its reason. Run against the fake by
// default, and against a real Flowker with REAL_FLOWKER_URL.
func TestRecoveryLearnsEveryOutcome(t *testing.T) {
	f := startTestFlowker(t)
	path := func(s string) string { return "/rec-" + f.run + "/" + s }

	// State before the requests.
	toUpdate := f.workflow("to-update", "")
	notUpdated := f.workflow("not-updated", "")
	toActivate := f.workflow("to-activate", path("activate"))
	notActivated := f.workflow("not-activated", path("not-activated"))
	toDeactivate := f.activeWorkflow("to-deactivate", path("deactivate"))
	toDraft := f.activeWorkflow("to-draft", path("draft"))
	f.must(http.StatusOK, "POST", "/v1/workflows/"+toDraft+"/deactivate", nil)
	toDelete := f.workflow("to-delete", "")
	notDeleted := f.workflow("not-deleted", "")
	toClone := f.workflow("clone-source", "")
	pcUpdate := f.providerConfig("pc-to-update")
	pcDisable := f.providerConfig("pc-to-disable")
	pcNotDisabled := f.providerConfig("pc-not-disabled")
	pcEnable := f.providerConfig("pc-to-enable")
	f.must(http.StatusOK, "POST", "/v1/provider-configurations/"+pcEnable+"/disable", nil)
	pcDelete := f.providerConfig("pc-to-delete")
	tracer, midaz := f.providerConfig("tpl-tracer"), f.midazConfig("tpl-midaz")
	runner := f.activeWorkflow("runner", path("runner"))
	twice := f.activeWorkflow("started-twice", path("twice"))
	keyless := f.activeWorkflow("keyless", path("keyless"))
	f.activeWorkflow("hooked", path("hooked"))
	f.activeWorkflow("hooked-idle", path("hooked-idle"))
	replayKey := f.name("replayed")
	replayed := f.start(runner, replayKey)
	var exUpdate, exDelete string
	if ids := strings.Split(os.Getenv(realFlowkerExecutorsEnv), ","); f.fake == nil && len(ids) == 2 {
		exUpdate, exDelete = ids[0], ids[1]
	}
	if f.fake != nil {
		var err error
		ep := []fakeflowker.ExecutorEndpoint{{Name: "e", Path: "/e", Method: "POST"}}
		if exUpdate, err = f.fake.SeedExecutorConfig(fakeflowker.ExecutorConfigSeed{Name: f.name("ex-to-update"), BaseURL: "http://127.0.0.1:9", Endpoints: ep}); err != nil {
			t.Fatal(err)
		}
		if exDelete, err = f.fake.SeedExecutorConfig(fakeflowker.ExecutorConfigSeed{Name: f.name("ex-to-delete"), BaseURL: "http://127.0.0.1:9", Endpoints: ep}); err != nil {
			t.Fatal(err)
		}
	}

	time.Sleep(200 * time.Millisecond) // past the skew allowed below
	// Changed just before the requests, within the clock allowance.
	recent := f.workflow("recent", path("recent"))
	start := time.Now()
	time.Sleep(5 * time.Millisecond)

	// The requests that reached Flowker (their events never journaled).
	created := f.must(http.StatusCreated, "POST", "/v1/workflows", map[string]any{"name": f.name("created")}).str("workflowId")
	for i := range 120 { // the created workflow is on the second page of the window
		f.must(http.StatusCreated, "POST", "/v1/workflows", map[string]any{"name": f.name(fmt.Sprintf("noise-%03d", i))})
	}
	// A name shaped like a secret (the intent's detail holds it; the event shows it redacted).
	secretName := "sk_live_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	secretCreated := f.must(http.StatusCreated, "POST", "/v1/workflows", map[string]any{"name": secretName}).str("workflowId")
	// Flowker creates no unique index on names (verified on v1.0.2): two creates of one name.
	f.must(http.StatusCreated, "POST", "/v1/workflows", map[string]any{"name": f.name("twin")})
	f.must(http.StatusCreated, "POST", "/v1/workflows", map[string]any{"name": f.name("twin")})
	clone := f.must(http.StatusCreated, "POST", "/v1/workflows/"+toClone+"/clone", map[string]any{"name": f.name("clone")}).str("workflowId")
	fromTemplate := f.must(http.StatusCreated, "POST", "/v1/workflows/from-template", map[string]any{"templateId": "tracer-midaz-validation",
		"params": map[string]any{"workflowName": f.name("from-template"), "tracerProviderConfigId": tracer, "midazProviderConfigId": midaz}}).str("workflowId")
	f.must(http.StatusOK, "PUT", "/v1/workflows/"+toUpdate, map[string]any{"name": f.name("updated")})
	f.must(http.StatusOK, "POST", "/v1/workflows/"+toActivate+"/activate", nil)
	f.must(http.StatusOK, "POST", "/v1/workflows/"+toDeactivate+"/deactivate", nil)
	f.must(http.StatusOK, "POST", "/v1/workflows/"+toDraft+"/draft", nil)
	f.must(http.StatusNoContent, "DELETE", "/v1/workflows/"+toDelete, nil)
	pcCreated := f.providerConfig("pc-created")
	f.must(http.StatusOK, "PATCH", "/v1/provider-configurations/"+pcUpdate, map[string]any{"name": f.name("pc-updated")})
	f.must(http.StatusOK, "POST", "/v1/provider-configurations/"+pcDisable+"/disable", nil)
	f.must(http.StatusOK, "POST", "/v1/provider-configurations/"+pcEnable+"/enable", nil)
	f.must(http.StatusNoContent, "DELETE", "/v1/provider-configurations/"+pcDelete, nil)
	if exUpdate != "" {
		f.must(http.StatusOK, "PATCH", "/v1/executors/"+exUpdate, map[string]any{"name": f.name("ex-updated"), "baseUrl": "http://127.0.0.1:9",
			"endpoints": []any{map[string]any{"name": "e", "path": "/e", "method": "POST"}}, "authentication": map[string]any{"type": "none"}})
		f.must(http.StatusNoContent, "DELETE", "/v1/executors/"+exDelete, nil)
	}
	started := f.start(runner, f.name("run-1"))
	customRun := f.start(runner, f.name("custom-run"))
	first, second := f.start(twice, f.name("twice-1")), f.start(twice, f.name("twice-2"))
	f.start(runner, replayKey) // replays the execution started before
	keylessRun := f.start(keyless, f.name("keyless"))
	// 105 more starts of that workflow, each claimed by another intent: the one without an event
	// is on the second page of GET /v1/executions (sorted by the cursor).
	var claimedRuns []string
	for i := range 105 {
		claimedRuns = append(claimedRuns, f.start(keyless, f.name(fmt.Sprintf("keyless-noise-%03d", i))))
	}
	hookedKey := f.hook(path("runner"), f.name("hook-key"))
	hookedRun := f.hook(path("hooked"), "")

	wf := func(rule, method, p string, params map[string]string, name string) proxy.IntentDetail {
		return proxy.IntentDetail{Rule: rule, Method: method, Path: p, Params: params, Name: name}
	}
	id := func(v string) map[string]string { return map[string]string{"id": v} }
	exec := func(workflowID, key string) proxy.IntentDetail {
		return proxy.IntentDetail{Rule: "execution.start", Method: "POST", Path: "/v1/workflows/" + workflowID + "/executions",
			Params: map[string]string{"workflowId": workflowID}, IdempotencyKey: key}
	}
	hook := func(p, key string) proxy.IntentDetail {
		return proxy.IntentDetail{Rule: "webhook.trigger", Method: "POST", Path: "/v1/webhooks" + p, IdempotencyKey: key}
	}
	ok, failed, unk := chain.ResultSuccess, chain.ResultFailed, chain.ResultUnknown
	cases := []recoveryCase{
		{"create applied (second page of the window)", intentFor(start, wf("workflow.create", "POST", "/v1/workflows", nil, f.name("created")), nil), ok, created, "createdAt"},
		{"create not applied", intentFor(start, wf("workflow.create", "POST", "/v1/workflows", nil, f.name("never")), nil), failed, "", "it was not created"},
		{"create with a name shaped like a secret (not repeated in the evidence)", intentFor(start, wf("workflow.create", "POST", "/v1/workflows", nil, secretName), nil),
			ok, secretCreated, `named "[REDACTED]"`},
		{"one of two creates of one name", intentFor(start, wf("workflow.create", "POST", "/v1/workflows", nil, f.name("twin")), nil), unk, "", "lists 2 resources"},
		{"create with a redacted name", intentFor(start, wf("workflow.create", "POST", "/v1/workflows", nil, capture.Redacted), nil), unk, "", "redacted"},
		{"clone applied", intentFor(start, wf("workflow.clone", "POST", "/v1/workflows/"+toClone+"/clone", id(toClone), f.name("clone")), nil), ok, clone, "createdAt"},
		{"from-template applied (name from the metadata)", intentFor(start, wf("workflow.create_from_template", "POST", "/v1/workflows/from-template", nil, ""),
			map[string]string{"workflow.name": f.name("from-template"), "workflow.template_id": "tracer-midaz-validation"}), ok, fromTemplate, "createdAt"},
		{"from-template not applied", intentFor(start, wf("workflow.create_from_template", "POST", "/v1/workflows/from-template", nil, ""),
			map[string]string{"workflow.name": f.name("tpl-never")}), failed, "", "it was not created"},
		{"update applied", intentFor(start, wf("workflow.update", "PUT", "/v1/workflows/"+toUpdate, id(toUpdate), f.name("updated")), nil), ok, "", "as requested"},
		{"update not applied", intentFor(start, wf("workflow.update", "PUT", "/v1/workflows/"+notUpdated, id(notUpdated), f.name("x")), nil), failed, "", "before the request"},
		{"activation applied", intentFor(start, wf("workflow.activate", "POST", "/v1/workflows/"+toActivate+"/activate", id(toActivate), ""), nil), ok, "", `"active"`},
		{"activation not applied", intentFor(start, wf("workflow.activate", "POST", "/v1/workflows/"+notActivated+"/activate", id(notActivated), ""), nil), failed, "", "before the request"},
		{"deactivation applied", intentFor(start, wf("workflow.deactivate", "POST", "/v1/workflows/"+toDeactivate+"/deactivate", id(toDeactivate), ""), nil), ok, "", `"inactive"`},
		{"move to draft applied", intentFor(start, wf("workflow.draft", "POST", "/v1/workflows/"+toDraft+"/draft", id(toDraft), ""), nil), ok, "", `"draft"`},
		{"delete applied", intentFor(start, wf("workflow.delete", "DELETE", "/v1/workflows/"+toDelete, id(toDelete), ""), nil), ok, "", "404"},
		{"delete not applied", intentFor(start, wf("workflow.delete", "DELETE", "/v1/workflows/"+notDeleted, id(notDeleted), ""), nil), failed, "", "still exists"},
		{"provider config create applied", intentFor(start, proxy.IntentDetail{Rule: "provider_config.create", Method: "POST", Path: "/v1/provider-configurations",
			Name: f.name("pc-created"), ProviderID: "tracer"}, nil), ok, pcCreated, "createdAt"},
		{"provider config create not applied", intentFor(start, proxy.IntentDetail{Rule: "provider_config.create", Method: "POST", Path: "/v1/provider-configurations",
			Name: f.name("pc-never"), ProviderID: "tracer"}, nil), failed, "", "it was not created"},
		{"provider config update applied", intentFor(start, wf("provider_config.update", "PATCH", "/v1/provider-configurations/"+pcUpdate, id(pcUpdate), f.name("pc-updated")), nil), ok, "", "as requested"},
		{"provider config disable applied", intentFor(start, wf("provider_config.disable", "POST", "/v1/provider-configurations/"+pcDisable+"/disable", id(pcDisable), ""), nil), ok, "", `"disabled"`},
		{"provider config disable not applied", intentFor(start, wf("provider_config.disable", "POST", "/v1/provider-configurations/"+pcNotDisabled+"/disable", id(pcNotDisabled), ""), nil), failed, "", "before the request"},
		{"provider config enable applied", intentFor(start, wf("provider_config.enable", "POST", "/v1/provider-configurations/"+pcEnable+"/enable", id(pcEnable), ""), nil), ok, "", `"active"`},
		{"provider config delete applied", intentFor(start, wf("provider_config.delete", "DELETE", "/v1/provider-configurations/"+pcDelete, id(pcDelete), ""), nil), ok, "", "404"},
		{"execution start applied (by key)", intentFor(start, exec(runner, f.name("run-1")), nil), ok, started, "Idempotency-Key"},
		{"first of two starts of one workflow", intentFor(start, exec(twice, f.name("twice-1")), nil), ok, first, "Idempotency-Key"},
		{"second of two starts of one workflow", intentFor(start, exec(twice, f.name("twice-2")), nil), ok, second, "Idempotency-Key"},
		{"execution start not applied (by key)", intentFor(start, exec(runner, f.name("run-never")), nil), failed, "", "FLK-0100"},
		{"execution start that replayed an earlier execution", intentFor(start, exec(runner, replayKey), nil), ok, replayed, "replayed"},
		{"execution start without a usable key (window, second page)", intentFor(start, exec(keyless, ""), nil), ok, keylessRun, "the only one"},
		{"webhook with a key applied", intentFor(start, hook(path("runner"), f.name("hook-key")), nil), ok, hookedKey, "Idempotency-Key"},
		{"webhook without a key applied (route, window)", intentFor(start, hook(path("hooked"), ""), nil), ok, hookedRun, "webhook trigger"},
		{"webhook without a key not applied", intentFor(start, hook(path("hooked-idle"), ""), nil), failed, "", "none was started"},
		{"webhook no active workflow declares", intentFor(start, hook(path("nowhere"), ""), nil), unk, "", "no active workflow"},
		{"update not applied to a workflow changed just before", intentFor(start, wf("workflow.update", "PUT", "/v1/workflows/"+recent, id(recent), f.name("y")), nil),
			unk, "", "within the 100ms clock allowance"},
		{"activation not applied to a workflow changed just before", intentFor(start, wf("workflow.activate", "POST", "/v1/workflows/"+recent+"/activate", id(recent), ""), nil),
			unk, "", "by an earlier request, or by this one and then another"},
		{"activation of a workflow that does not exist (now)", intentFor(start, wf("workflow.activate", "POST", "/v1/workflows/"+toDelete+"/activate", id(toDelete), ""), nil), unk, "", "does not exist now"},
		{"delete with an id Flowker refuses", intentFor(start, wf("workflow.delete", "DELETE", "/v1/workflows/not-a-uuid", id("not-a-uuid"), ""), nil), unk, "", "answered 400 FLK-0002"},
		{"update with no name to identify it", intentFor(start, wf("provider_config.update", "PATCH", "/v1/provider-configurations/"+pcUpdate, id(pcUpdate), ""), nil), unk, "", "nothing identifies the change"},
		{"configured execution-start rule with a key", intentFor(start, proxy.IntentDetail{Rule: "custom.run", Kind: "execution_start", Method: "POST",
			Path: "/v1/workflows/" + runner + "/executions", IdempotencyKey: f.name("custom-run")}, nil), ok, customRun, "Idempotency-Key"},
		{"configured execution-start rule without a key", intentFor(start, proxy.IntentDetail{Rule: "custom.run", Kind: "execution_start", Method: "POST",
			Path: "/v1/custom"}, nil), unk, "", "carried no Idempotency-Key"},
		{"configured rule of another kind", intentFor(start, proxy.IntentDetail{Rule: "custom.thing", Method: "POST", Path: "/v1/custom"}, nil), unk, "", "not one whose outcome"},
		{"unclassified route", intentFor(start, proxy.IntentDetail{Rule: "unclassified", Method: "PATCH", Path: "/v1/somewhere"}, nil), unk, "", "matched no rule"},
	}
	if exUpdate != "" {
		cases = append(cases,
			recoveryCase{"executor config update applied", intentFor(start, wf("executor_config.update", "PATCH", "/v1/executors/"+exUpdate, id(exUpdate), ""),
				map[string]string{"executor_config.name": f.name("ex-updated")}), ok, "", "as requested"},
			recoveryCase{"executor config delete applied", intentFor(start, wf("executor_config.delete", "DELETE", "/v1/executors/"+exDelete, id(exDelete), ""), nil), ok, "", "404"},
		)
	} else {
		t.Logf("executor configuration cases skipped: the real Flowker has no route that creates one (set %s)", realFlowkerExecutorsEnv)
	}

	rc := testReconciler(t, f, 100*time.Millisecond)
	for _, id := range claimedRuns {
		rc.claimed[id] = true
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := rc.learn(t.Context(), c.intent)
			if err != nil {
				t.Fatal(err)
			}
			text := out.Evidence + out.Reason
			if strings.Contains(text, secretName) {
				t.Fatalf("the evidence repeats a secret-shaped value: %s", text)
			}
			if out.Result != c.result || (c.resource != "" && out.ResourceID != c.resource) || !strings.Contains(text, c.says) {
				t.Fatalf("result %s resource %q %q (want %s %q, saying %q)", out.Result, out.ResourceID, text, c.result, c.resource, c.says)
			}
			if out.Reconciled != (c.result != unk) || (out.Reconciled && out.Evidence == "") || (!out.Reconciled && out.Reason == "") {
				t.Fatalf("reconciled %v evidence %q reason %q", out.Reconciled, out.Evidence, out.Reason)
			}
			if out.ResourceID != "" {
				rc.claimed[out.ResourceID] = true
			}
		})
	}
}

func testReconciler(t *testing.T, f *testFlowker, skew time.Duration) *reconciler {
	t.Helper()
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(t.TempDir(), "journal.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	base, err := url.Parse(f.base)
	if err != nil {
		t.Fatal(err)
	}
	return &reconciler{base: base, client: &http.Client{Timeout: 15 * time.Second}, apiKey: f.key, journal: j,
		skew: skew, until: time.Now().Add(skew), claimed: map[string]bool{}, maxPages: 50}
}

// TestKeyedStartsAreRecoveredFirst: a keyed start and a keyless webhook call started one
// execution each of the same workflow. Looked up by key first, the keyed start claims its own
// execution, and the webhook's is then the only one left in the window; in the other order the
// webhook would see two candidates. An execution its key names that started after this process
// did is not attributed to the request.
func TestKeyedStartsAreRecoveredFirst(t *testing.T) {
	f := startTestFlowker(t)
	hookPath := "/rec-" + f.run + "/both"
	w := f.activeWorkflow("both", hookPath)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	time.Sleep(5 * time.Millisecond)
	hooked := f.hook(hookPath, "")
	keyed := f.start(w, f.name("keyed"))

	webhookIntent := intentFor(start, proxy.IntentDetail{Rule: "webhook.trigger", Method: "POST", Path: "/v1/webhooks" + hookPath}, nil)
	keyedIntent := intentFor(start, proxy.IntentDetail{Rule: "execution.start", Method: "POST", Path: "/v1/workflows/" + w + "/executions",
		Params: map[string]string{"workflowId": w}, IdempotencyKey: f.name("keyed")}, nil)
	lateIntent := intentFor(start, proxy.IntentDetail{Rule: "execution.start", Method: "POST", Path: "/v1/workflows/" + w + "/executions",
		Params: map[string]string{"workflowId": w}, IdempotencyKey: f.name("late")}, nil)
	rc := testReconciler(t, f, 100*time.Millisecond)
	time.Sleep(150 * time.Millisecond) // past rc.until
	f.start(w, f.name("late"))

	order := recoveryOrder([]journal.Intent{webhookIntent, keyedIntent, lateIntent})
	if order[0].ID != keyedIntent.ID || order[1].ID != lateIntent.ID || order[2].ID != webhookIntent.ID {
		t.Fatal("the keyed starts are not first")
	}
	want := map[string]struct{ result, resource, says string }{
		keyedIntent.ID:   {chain.ResultSuccess, keyed, "Idempotency-Key"},
		lateIntent.ID:    {chain.ResultUnknown, "", "after the sidecar restarted"},
		webhookIntent.ID: {chain.ResultSuccess, hooked, "the only one"},
	}
	for _, in := range order {
		out, err := rc.learn(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[in.ID]; out.Result != w.result || out.ResourceID != w.resource || !strings.Contains(out.Evidence+out.Reason, w.says) {
			t.Fatalf("%s: result %s resource %q (want %s %q): %s%s", in.Detail, out.Result, out.ResourceID, w.result, w.resource, out.Evidence, out.Reason)
		}
		if out.ResourceID != "" {
			rc.claimed[out.ResourceID] = true
		}
	}
}
