package watcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
)

const execID = "94c792d4-2229-4ab1-9617-3d63eebb4d3d"

func openJournal(t *testing.T) *journal.Journal {
	t.Helper()
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(t.TempDir(), "j.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// started journals an EXECUTION_STARTED with its watch entry, as the proxy does.
func started(t *testing.T, j *journal.Journal, id string) {
	t.Helper()
	_, err := j.Append(context.Background(), journal.Draft{EventID: "s-" + id, EventType: chain.ExecutionStarted,
		Action: chain.ActionExecute, Result: chain.ResultSuccess, ResourceID: id, ResourceType: chain.ResourceExecution,
		Once: "exec-start:" + id, Watch: &journal.Watch{ExecutionID: id, WorkflowID: "wf", Since: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
}

type upstream struct {
	mu     sync.Mutex
	status string
	errMsg string
	code   int
	polls  atomic.Int64
	keys   []string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.polls.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.keys = append(u.keys, r.Header.Get("X-API-Key"))
	if u.code != 0 {
		w.WriteHeader(u.code)
		return
	}
	out := map[string]any{"executionId": execID, "workflowId": "wf", "status": u.status, "startedAt": "2026-11-24T00:00:00Z"}
	if u.errMsg != "" {
		out["errorMessage"] = u.errMsg
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (u *upstream) set(status, msg string, code int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status, u.errMsg, u.code = status, msg, code
}

func newWatcher(t *testing.T, j *journal.Journal, up *upstream, mut ...func(*Options)) (*Watcher, *prometheus.Registry, chan chain.Event) {
	t.Helper()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	reg := prometheus.NewRegistry()
	events := make(chan chain.Event, 10)
	o := Options{Upstream: u, APIKey: "watch-key", Interval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond,
		Journal: j, Registerer: reg, OnEvent: func(e chain.Event) { events <- e }}
	for _, f := range mut {
		f(&o)
	}
	return New(o), reg, events
}

func run(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPollsUntilTerminalThenStops(t *testing.T) {
	j := openJournal(t)
	started(t, j, execID)
	up := &upstream{status: "running"}
	w, reg, events := newWatcher(t, j, up)
	run(t, w) // resumes from the persisted watch list
	deadline := time.After(10 * time.Second)
	for up.polls.Load() < 3 {
		select {
		case <-deadline:
			t.Fatal("no polls")
		case <-time.After(5 * time.Millisecond):
		}
	}
	up.set("failed", `node "screen": executor call failed after 5 attempts: boom`, 0)
	var ev chain.Event
	select {
	case ev = <-events:
	case <-deadline:
		t.Fatal("no terminal event")
	}
	var meta map[string]string
	_ = json.Unmarshal(ev.Metadata, &meta)
	if ev.EventType != chain.ExecutionFailed || ev.Result != chain.ResultFailed || ev.ResourceID != execID ||
		meta["error"] != "FLK-0504" || meta["workflow.id"] != "wf" || ev.Actor.Type != chain.ActorSystem {
		t.Fatalf("terminal event %+v %v", ev, meta)
	}
	if ws, _ := j.Watches(); len(ws) != 0 {
		t.Fatalf("watch list: %+v", ws)
	}
	polls := up.polls.Load()
	time.Sleep(100 * time.Millisecond)
	if up.polls.Load() != polls || w.Pending() != 0 {
		t.Fatalf("kept polling after the outcome (%d -> %d)", polls, up.polls.Load())
	}
	if got := testutil.ToFloat64(w.polls.WithLabelValues("terminal")); got != 1 {
		t.Fatalf("terminal polls %v", got)
	}
	_ = reg
	for _, k := range up.keys {
		if k != "watch-key" {
			t.Fatalf("poll without the configured key: %q", k)
		}
	}
}

func TestSecondOutcomeIsDeduplicated(t *testing.T) {
	j := openJournal(t)
	started(t, j, execID)
	up := &upstream{status: "completed"}
	w, _, events := newWatcher(t, j, up)
	// Seen in passing and polled: still one event.
	body := []byte(fmt.Sprintf(`{"executionId":%q,"workflowId":"wf","status":"completed"}`, execID))
	w.Started(execID, "wf")
	w.Seen(execID, body)
	run(t, w)
	<-events
	w.Started(execID, "wf") // a late notification must not produce a second outcome
	time.Sleep(100 * time.Millisecond)
	n := 0
	_ = j.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		if e.EventType == chain.ExecutionCompleted {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d EXECUTION_COMPLETED events, want 1", n)
	}
}

func TestGivesUpAfterTheDeadline(t *testing.T) {
	j := openJournal(t)
	started(t, j, execID)
	up := &upstream{code: http.StatusNotFound}
	w, _, _ := newWatcher(t, j, up, func(o *Options) { o.GiveUpAfter = 50 * time.Millisecond })
	run(t, w)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(w.abandoned) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("never gave up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ws, _ := j.Watches(); len(ws) != 0 || w.Pending() != 0 {
		t.Fatalf("abandoned execution still watched: %+v", ws)
	}
}

func TestErrorMetadataLikeFlowker(t *testing.T) {
	for in, want := range map[string]string{
		`node "x": executor call failed after 5 attempts: http 500`: "FLK-0504",
		"execution timeout: context deadline exceeded":              "execution timeout: context deadline exceeded",
		"no trigger node found in workflow":                         "no trigger node found in workflow",
	} {
		if got := flowkerErrorMetadata(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}
