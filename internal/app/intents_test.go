package app

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy"
)

// TestObservedEventsAreRecoveredAsTheyWere: an intent whose event was written before the answer
// (Intent.Completion) is appended as it is, first and without asking Flowker, and counted with
// outcome "observed"; the intent without one is learned from Flowker after it.
func TestObservedEventsAreRecoveredAsTheyWere(t *testing.T) {
	var asked atomic.Int64
	flowker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	}))
	defer flowker.Close()
	reg := prometheus.NewRegistry()
	jm := journal.NewMetrics(reg)
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(t.TempDir(), "journal.db"), NoSync: true, Metrics: jm})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	base, _ := url.Parse(flowker.URL)
	a := &App{cfg: &config.Config{Watcher: config.Watcher{APIKey: "k"}}, journal: j, journalMetrics: jm, proxyMetrics: proxy.NewMetrics(reg), log: slog.New(slog.DiscardHandler), started: time.Now()}
	a.upstream, a.transport = base, http.DefaultTransport.(*http.Transport)

	start := time.Now()
	del := intentFor(start, proxy.IntentDetail{Rule: "workflow.delete", Method: "DELETE", Path: "/v1/workflows/5f0c2a8e-3b1d-4e6f-9a2b-7c8d9e0f1a2b", Params: map[string]string{"id": "5f0c2a8e-3b1d-4e6f-9a2b-7c8d9e0f1a2b"}}, nil)
	obs := intentFor(start, proxy.IntentDetail{Rule: "workflow.create", Method: "POST", Path: "/v1/workflows", Name: "observed"}, nil)
	for _, in := range []journal.Intent{del, obs} {
		if err := j.Intend(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	d := obs.Draft
	d.EventType, d.Action, d.ResourceType, d.Result, d.ResourceID, d.Resolves = chain.WorkflowCreated, chain.ActionCreate,
		chain.ResourceWorkflow, chain.ResultSuccess, "0b7e4a52-8d0c-4c2e-9a57-6d4f0f7c1a10", obs.ID
	d.Context = []byte(`{"status": 201}`)
	obs.Completion = &d
	a.unresolved = []journal.Intent{del, obs}

	a.recoverIntents(context.Background())
	var got []chain.Event
	if err := j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error { got = append(got, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].EventID != obs.ID || got[0].Result != chain.ResultSuccess || got[0].ResourceID != d.ResourceID ||
		string(got[0].Context) != `{"status": 201}` || got[1].EventID != del.ID {
		t.Fatalf("recovered events: %+v", got)
	}
	if n := testutil.ToFloat64(jm.IntentsRecovered.WithLabelValues("observed")); n != 1 {
		t.Fatalf("observed recoveries %v", n)
	}
	if j.Pending() != 0 {
		t.Fatalf("%d intents left", j.Pending())
	}
	if asked.Load() == 0 {
		t.Fatal("the intent without a completion was not learned from Flowker")
	}
}
