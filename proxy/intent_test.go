package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
)

// The intent is durable before Flowker sees the request, carries the event id the client gets,
// and is resolved by the event.
func TestIntentIsDurableBeforeForwarding(t *testing.T) {
	var h *harness
	var seen []journal.Intent
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := h.journal.Intents()
		if err != nil {
			t.Error(err)
		}
		seen = in
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"workflowId":%q,"status":"draft"}`, wfID)
	})
	h = newHarness(t, up)
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"intent-first","password":"hunter2"}`),
		map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 201 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	id := resp.Header.Get("X-Audit-Id")
	if len(seen) != 1 || seen[0].ID != id {
		t.Fatalf("intents while Flowker handled the request: %+v (X-Audit-Id %s)", seen, id)
	}
	in := seen[0]
	if in.Draft.EventType != chain.WorkflowCreated || in.Draft.Result != "" || strings.Contains(string(in.Draft.Context), "hunter2") ||
		!strings.Contains(string(in.Draft.Context), `"intent-first"`) {
		t.Fatalf("intent draft: %+v %s", in.Draft, in.Draft.Context)
	}
	det, err := ParseIntentDetail(in.Detail)
	if err != nil || det.Rule != "workflow.create" || det.Name != "intent-first" || det.Method != "POST" {
		t.Fatalf("intent detail: %v %+v", err, det)
	}
	if err := h.journal.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.journal.Pending(); n != 0 {
		t.Fatalf("%d intents pending after the response", n)
	}
	if evs := h.events(); len(evs) != 1 || evs[0].EventID != id {
		t.Fatalf("events: %+v", evs)
	}
}

// flakyJournal wraps a journal: intents and appends fail while its failure is set.
type flakyJournal struct {
	*journal.Journal
	intendErr, appendErr atomic.Pointer[error]
}

func (f *flakyJournal) Intend(ctx context.Context, in journal.Intent) error {
	if e := f.intendErr.Load(); e != nil {
		return *e
	}
	return f.Journal.Intend(ctx, in)
}

func (f *flakyJournal) Complete(ctx context.Context, d journal.Draft, then func(chain.Event, error)) error {
	if e := f.appendErr.Load(); e != nil {
		return *e
	}
	return f.Journal.Complete(ctx, d, then)
}

func (f *flakyJournal) Append(ctx context.Context, d journal.Draft) (chain.Event, error) {
	if e := f.appendErr.Load(); e != nil {
		return chain.Event{}, *e
	}
	return f.Journal.Append(ctx, d)
}

func TestIntentFailure(t *testing.T) {
	failed := fmt.Errorf("%w: no space left on device", journal.ErrFailed)
	cases := []struct {
		name        string
		mode        string
		wantStatus  int
		wantForward bool
	}{
		{"fail_closed refuses before Flowker", config.FailClosed, http.StatusServiceUnavailable, false},
		{"fail_open forwards and counts", config.FailOpen, http.StatusCreated, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := &echoUpstream{}
			fj := &flakyJournal{}
			h := newHarness(t, up, func(o *Options) {
				fj.Journal = o.Journal.(*journal.Journal)
				o.Journal = fj
				o.FailMode = c.mode
			})
			fj.intendErr.Store(&failed)
			resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), nil)
			if resp.StatusCode != c.wantStatus || (up.last() != nil) != c.wantForward {
				t.Fatalf("status %d, forwarded %v", resp.StatusCode, up.last() != nil)
			}
			refused := testutil.ToFloat64(h.proxy.m.Refused.WithLabelValues("journal_failed"))
			unintended := testutil.ToFloat64(h.proxy.m.Unintended.WithLabelValues("journal_failed"))
			if c.mode == config.FailClosed && (refused != 1 || unintended != 0) || c.mode == config.FailOpen && (refused != 0 || unintended != 1) {
				t.Fatalf("refused %v, forwarded without intent %v", refused, unintended)
			}
		})
	}
}

// A request that reached Flowker while the journal could not append its event keeps its event
// (the intent is durable): it is appended once the journal writes again, with the same id.
func TestStrandedEventIsAppendedLater(t *testing.T) {
	up := &echoUpstream{}
	fj := &flakyJournal{}
	h := newHarness(t, up, func(o *Options) {
		fj.Journal = o.Journal.(*journal.Journal)
		o.Journal = fj
	})
	failed := fmt.Errorf("%w: no space left on device", journal.ErrFailed)
	fj.appendErr.Store(&failed)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(fmt.Sprintf(`{"name":"s%d"}`, i)), nil)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if h.proxy.StrandedCount() != 3 || h.journal.Pending() != 3 || len(h.events()) != 0 {
		t.Fatalf("waiting %d, pending %d, events %d", h.proxy.StrandedCount(), h.journal.Pending(), len(h.events()))
	}
	if n, err := h.proxy.RetryStranded(context.Background()); !errors.Is(err, journal.ErrFailed) || n != 0 {
		t.Fatalf("retry while failing: %d %v", n, err)
	}
	fj.appendErr.Store(nil)
	if n, err := h.proxy.RetryStranded(context.Background()); err != nil || n != 3 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if h.proxy.StrandedCount() != 0 || h.journal.Pending() != 0 || len(h.events()) != 3 {
		t.Fatalf("after retry: waiting %d, pending %d, events %d", h.proxy.StrandedCount(), h.journal.Pending(), len(h.events()))
	}
	if got := testutil.ToFloat64(h.proxy.opts.Lost.WithLabelValues("journal_failed")); got != 0 {
		t.Fatalf("events_lost_total %v", got)
	}
}
