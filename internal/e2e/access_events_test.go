package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/app"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// accessRecorded returns flowker_audit_access_events_recorded_total, or -1 when it is not
// registered (access_events off).
func accessRecorded(t *testing.T, env *testenv.Env) float64 {
	t.Helper()
	mfs, err := env.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "flowker_audit_access_events_recorded_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// waitAccessDelivered waits until want access events were journaled and the access sink holds
// them all.
func waitAccessDelivered(t *testing.T, env *testenv.Env, want float64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%v access events delivered", want), func() bool {
		_, r := env.App.Ready()
		c, ok := r.Checks["access-sink:access"]
		return accessRecorded(t, env) == want && ok && c.Status == "up" && c.Lag == 0
	})
}

// accessPage reads the access trail (which records this read too, after answering it).
func accessPage(t *testing.T, env *testenv.Env, query string) testenv.Page {
	t.Helper()
	r := env.Audit("/v1/audit-access-events?" + query)
	if r.Status != http.StatusOK {
		t.Fatalf("access trail: %d %s", r.Status, r.Body)
	}
	var p testenv.Page
	r.JSON(t, &p)
	return p
}

// TestAccessEventsThroughTheSidecar: with access_events on, each authenticated read of the
// audit API (search, get, verify, export, the page's configuration) makes exactly one
// AUDIT_TRAIL_READ event on the access chain, delivered to the access sink and served under
// /v1/audit-access-events; the Flowker-compatible search, its paging and verify show the audit
// events only, and both chains verify. A refused (401) call makes none; reading the access trail
// makes one event per call, no more. After a restart the access chain continues and verifies.
func TestAccessEventsThroughTheSidecar(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		c.AccessEvents.Enabled = true
		c.AccessEvents.Sinks = []config.Sink{{Name: "access", Plugin: "sqlite", Query: true,
			Config: map[string]any{"path": filepath.Join(c.DataDir, "access-events.db")}}}
		c.Identity.APIKeyNames = map[string]string{}
	}})
	for i := 0; i < 3; i++ {
		if r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": fmt.Sprintf("acc-%d", i)}); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
	}
	env.WaitDelivered(30 * time.Second)
	if n := accessRecorded(t, env); n != 0 {
		t.Fatalf("%v access events before any read", n)
	}

	// Five reads, one of each kind.
	r := env.Audit("/v1/audit-events?limit=2&eventType=WORKFLOW_CREATED")
	var page testenv.Page
	r.JSON(t, &page)
	if r.Status != 200 || len(page.Items) != 2 || !page.HasMore {
		t.Fatalf("search: %d %s", r.Status, r.Body)
	}
	id := page.Items[0].EventID
	if r := env.Audit("/v1/audit-events/" + id); r.Status != 200 {
		t.Fatalf("get: %d", r.Status)
	}
	var ver struct {
		IsValid      bool   `json:"isValid"`
		TotalChecked uint64 `json:"totalChecked"`
		ChainID      string `json:"chainId"`
	}
	r = env.Audit("/v1/audit-events/" + id + "/verify")
	r.JSON(t, &ver)
	if !ver.IsValid || ver.TotalChecked != 3 {
		t.Fatalf("verify of the audit chain: %s", r.Body)
	}
	mainChain := ver.ChainID
	if r := env.Audit("/v1/audit-events/export?format=ndjson"); r.Status != 200 {
		t.Fatalf("export: %d", r.Status)
	}
	if r := env.Audit("/audit-trail/config.json"); r.Status != 200 {
		t.Fatalf("ui config: %d", r.Status)
	}
	// Refused before authentication: logged and counted, not recorded.
	if r := testenv.Do(t, "GET", env.ProxyURL+"/v1/audit-events", nil, map[string]string{"X-API-Key": "wrong-key-0000000000"}); r.Status != 401 {
		t.Fatalf("wrong key: %d", r.Status)
	}
	waitAccessDelivered(t, env, 5)

	p := accessPage(t, env, "sortOrder=ASC&limit=100") // recorded as the 6th
	if len(p.Items) != 5 {
		t.Fatalf("access trail: %d events, want 5: %+v", len(p.Items), p.Items)
	}
	wantEndpoint := []string{"list", "get", "verify", "export", "ui-config"}
	wantRows := []int{2, 1, 3, 3, 0}
	for i, e := range p.Items {
		var ctx struct {
			Endpoint string            `json:"endpoint"`
			Rows     int               `json:"rows"`
			Status   int               `json:"status"`
			Filters  map[string]string `json:"filters"`
			EventID  string            `json:"eventId"`
		}
		if err := json.Unmarshal(e.Context, &ctx); err != nil {
			t.Fatalf("context %s: %v", e.Context, err)
		}
		if e.EventType != app.AccessEventType || e.Action != app.AccessAction || e.ResourceType != app.AccessResourceType ||
			e.Result != chain.ResultSuccess || e.Actor.Type != chain.ActorAPIKey || !strings.HasPrefix(e.Actor.ID, "key:") ||
			e.ChainID != mainChain+app.AccessChainSuffix || e.Sequence != uint64(i+1) {
			t.Errorf("access event %d: %+v", i, e)
		}
		if ctx.Endpoint != wantEndpoint[i] || ctx.Rows != wantRows[i] || ctx.Status != 200 {
			t.Errorf("access event %d context: %s", i, e.Context)
		}
	}
	if first := p.Items[0]; !strings.Contains(string(first.Context), `"eventType": "WORKFLOW_CREATED"`) {
		t.Errorf("the search's filters are not in its access event: %s", first.Context)
	}
	if got := p.Items[1]; got.ResourceID != id {
		t.Errorf("get's access event names resource %q, want the event read %s", got.ResourceID, id)
	}

	// The Flowker-compatible search, paged, holds the three audit events only.
	all := env.AllEvents() // two pages' worth of reads, recorded too
	if len(all) != 3 {
		t.Fatalf("default search: %d events, want the 3 audit events", len(all))
	}
	for _, e := range all {
		if e.EventType == app.AccessEventType || e.ChainID != mainChain {
			t.Fatalf("default search returned %+v", e)
		}
	}
	// Asked for explicitly by type on the default search: still none (another store).
	if r := env.Audit("/v1/audit-events?eventType=" + app.AccessEventType); r.Status != 400 {
		t.Errorf("eventType=%s on the audit search: %d %s, want 400 (not one of its types)", app.AccessEventType, r.Status, r.Body)
	}
	// The audit chain still verifies as three events; the access chain verifies on its own.
	r = env.Audit("/v1/audit-events/" + all[2].EventID + "/verify")
	r.JSON(t, &ver)
	if !ver.IsValid || ver.TotalChecked != 3 || ver.ChainID != mainChain {
		t.Fatalf("verify of the audit chain after reads: %s", r.Body)
	}
	// Reads so far: 5 + access search + AllEvents (1 page) + eventType 400 + verify = 9.
	waitAccessDelivered(t, env, 9)
	last := accessPage(t, env, "limit=1") // the 10th
	if len(last.Items) != 1 || last.Items[0].Sequence != 9 {
		t.Fatalf("newest access event: %+v", last.Items)
	}
	r = env.Audit("/v1/audit-access-events/" + last.Items[0].EventID + "/verify") // the 11th
	r.JSON(t, &ver)
	if !ver.IsValid || ver.TotalChecked != 9 || ver.ChainID != mainChain+app.AccessChainSuffix {
		t.Fatalf("verify of the access chain: %s", r.Body)
	}
	// No feedback: each read of the access trail made exactly one event.
	waitAccessDelivered(t, env, 11)
	time.Sleep(300 * time.Millisecond)
	if n := accessRecorded(t, env); n != 11 {
		t.Fatalf("%v access events after 11 reads", n)
	}
	if _, err := os.Stat(filepath.Join(env.DataDir, "access-journal.db")); err != nil {
		t.Fatal(err)
	}

	// Durable across a restart: the access chain continues at 12 and verifies whole.
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	env2 := testenv.Start(t, testenv.Options{DataDir: env.DataDir, Config: func(c *config.Config) {
		c.AccessEvents.Enabled = true
		c.AccessEvents.Sinks = []config.Sink{{Name: "access", Plugin: "sqlite", Query: true,
			Config: map[string]any{"path": filepath.Join(c.DataDir, "access-events.db")}}}
	}})
	// The access sink's plugin starts beside the audit sink: wait for it (readiness is not a read
	// of the trail, so it records nothing) before reading the access trail.
	testenv.Eventually(t, 30*time.Second, "the access sink up after the restart", func() bool {
		r := testenv.Do(t, "GET", env2.AdminURL+"/readyz", nil, nil)
		return strings.Contains(string(r.Body), `"access-sink:access":{"status":"up"`)
	})
	if all := accessPage(t, env2, "limit=100"); len(all.Items) != 11 { // the 12th
		t.Fatalf("after a restart the access trail holds %d events, want 11", len(all.Items))
	}
	waitAccessDelivered(t, env2, 1)
	last = accessPage(t, env2, "limit=1") // the 13th
	if len(last.Items) != 1 || last.Items[0].Sequence != 12 {
		t.Fatalf("newest access event after a restart: %+v", last.Items)
	}
	r = env2.Audit("/v1/audit-access-events/" + last.Items[0].EventID + "/verify")
	r.JSON(t, &ver)
	if !ver.IsValid || ver.TotalChecked != 12 {
		t.Fatalf("verify of the access chain after a restart: %s", r.Body)
	}
	if r := env2.Audit("/v1/audit-events/" + all[2].EventID + "/verify"); !strings.Contains(string(r.Body), `"totalChecked":3`) {
		t.Fatalf("verify of the audit chain after a restart: %s", r.Body)
	}
}

// TestAccessEventsOffByDefault: without access_events nothing is recorded, no access journal is
// created, and /v1/audit-access-events is not the audit API's (it goes to Flowker).
func TestAccessEventsOffByDefault(t *testing.T) {
	if config.Default().AccessEvents.Enabled {
		t.Fatal("access_events.enabled is on by default")
	}
	env := testenv.Start(t, testenv.Options{})
	if r := env.Audit("/v1/audit-events"); r.Status != 200 {
		t.Fatalf("search: %d", r.Status)
	}
	if n := accessRecorded(t, env); n != -1 {
		t.Fatalf("access events recorded without access_events: %v", n)
	}
	if _, r := env.App.Ready(); len(r.Checks) == 0 || r.Checks["access-sink:access"] != (app.CheckResult{}) {
		t.Fatalf("readiness lists an access sink without access_events: %+v", r.Checks)
	}
	if _, err := os.Stat(filepath.Join(env.DataDir, "access-journal.db")); !os.IsNotExist(err) {
		t.Fatalf("access-journal.db: %v", err)
	}
	r := env.Audit("/v1/audit-access-events")
	if r.Status == http.StatusOK {
		t.Fatalf("/v1/audit-access-events without access_events: %d %s (want Flowker's answer)", r.Status, r.Body)
	}
}
