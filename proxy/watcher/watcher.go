// Package watcher learns how executions end.
//
// Flowker runs executions asynchronously: EXECUTION_COMPLETED and EXECUTION_FAILED happen inside
// Flowker after the response that started them. The watcher learns them in two ways: from terminal
// statuses seen in GET /v1/executions/{id} responses that pass through the proxy, and by polling
// that route for every execution the sidecar saw start, with exponential backoff and a bounded
// number of polls in flight. The set of executions being watched is persisted in the journal in
// the same transaction as their EXECUTION_STARTED event, so it survives restarts, and each
// terminal event is appended with a once-key, so there is exactly one per execution.
package watcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// Journal is what the watcher needs from the journal.
type Journal interface {
	Append(ctx context.Context, d journal.Draft) (chain.Event, error)
	Watches() ([]journal.Watch, error)
	Unwatch(executionID string) error
}

// Options configure a Watcher.
type Options struct {
	Upstream      *url.URL
	Client        *http.Client
	APIKey        string
	Authorization string
	// Credentials, when set, authorize every poll (after APIKey and Authorization); a poll
	// answered 401 is retried once after Credentials.Invalidate.
	Credentials Credentials
	Interval    time.Duration
	MaxInterval time.Duration
	GiveUpAfter time.Duration
	MaxInFlight int
	Journal     Journal
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
	Now         func() time.Time
	// OnEvent is called after a terminal event was journaled (metrics, tests).
	OnEvent func(chain.Event)
}

type entry struct {
	w        journal.Watch
	next     time.Time
	attempts int
	busy     bool
}

// Watcher polls executions until they end.
type Watcher struct {
	opts    Options
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]*entry
	wake    chan struct{}
	sem     chan struct{}

	pendingGauge prometheus.Gauge
	polls        *prometheus.CounterVec
	abandoned    prometheus.Counter
}

// New creates a watcher.
func New(opts Options) *Watcher {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.MaxInterval < opts.Interval {
		opts.MaxInterval = 30 * time.Second
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = 24 * time.Hour
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Watcher{
		opts: opts, log: opts.Logger, pending: map[string]*entry{},
		wake: make(chan struct{}, 1), sem: make(chan struct{}, opts.MaxInFlight),
		pendingGauge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowker_audit", Subsystem: "watcher", Name: "pending",
			Help: "Executions whose outcome the sidecar is still waiting to learn."}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowker_audit", Subsystem: "watcher", Name: "polls_total",
			Help: "Polls of GET /v1/executions/{id}, by outcome (terminal, running, error)."}, []string{"outcome"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowker_audit", Subsystem: "watcher", Name: "abandoned_total",
			Help: "Executions given up on after watcher.give_up_after without learning their outcome."}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(w.pendingGauge, w.polls, w.abandoned)
	}
	return w
}

// Started registers an execution to watch (its watch entry is already in the journal).
func (w *Watcher) Started(executionID, workflowID string) {
	w.mu.Lock()
	if _, ok := w.pending[executionID]; !ok {
		w.pending[executionID] = &entry{w: journal.Watch{ExecutionID: executionID, WorkflowID: workflowID, Since: w.opts.Now().UTC()},
			next: w.opts.Now().Add(w.opts.Interval)}
	}
	w.pendingGauge.Set(float64(len(w.pending)))
	w.mu.Unlock()
	w.poke()
}

// Watching reports whether executionID's outcome is still awaited.
func (w *Watcher) Watching(executionID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.pending[executionID]
	return ok
}

// Seen handles an execution status that passed through the proxy.
func (w *Watcher) Seen(executionID string, body []byte) {
	w.mu.Lock()
	e, ok := w.pending[executionID]
	if ok && e.busy {
		ok = false // a poll is already handling it
	} else if ok {
		e.busy = true
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	st, err := parseStatus(body)
	if err != nil || !st.terminal() {
		w.release(executionID, false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.finish(ctx, e.w, st, "passthrough")
}

func (w *Watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run loads the persisted watch list and polls until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	ws, err := w.opts.Journal.Watches()
	if err != nil {
		return fmt.Errorf("loading the watch list: %w", err)
	}
	w.mu.Lock()
	for _, x := range ws {
		if _, ok := w.pending[x.ExecutionID]; !ok {
			w.pending[x.ExecutionID] = &entry{w: x, next: w.opts.Now()}
		}
	}
	w.pendingGauge.Set(float64(len(w.pending)))
	w.mu.Unlock()
	if len(ws) > 0 {
		w.log.Info("resuming execution watch", "executions", len(ws))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now := w.opts.Now()
		var due []*entry
		wait := time.Hour
		w.mu.Lock()
		for _, e := range w.pending {
			if e.busy {
				continue
			}
			if !e.next.After(now) {
				due = append(due, e)
			} else if d := e.next.Sub(now); d < wait {
				wait = d
			}
		}
		for _, e := range due {
			e.busy = true
		}
		w.mu.Unlock()
		for _, e := range due {
			select {
			case w.sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func(e *entry) {
				defer wg.Done()
				defer func() { <-w.sem }()
				w.poll(ctx, e)
				w.poke()
			}(e)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

type status struct {
	ExecutionID       string          `json:"executionId"`
	WorkflowID        string          `json:"workflowId"`
	Status            string          `json:"status"`
	CurrentStepNumber json.Number     `json:"currentStepNumber"`
	TotalSteps        json.Number     `json:"totalSteps"`
	StartedAt         string          `json:"startedAt"`
	CompletedAt       string          `json:"completedAt"`
	ErrorMessage      string          `json:"errorMessage"`
	Extra             json.RawMessage `json:"-"`
}

func (s status) terminal() bool { return s.Status == "completed" || s.Status == "failed" }

func parseStatus(b []byte) (status, error) {
	var s status
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&s)
	return s, err
}

func (w *Watcher) poll(ctx context.Context, e *entry) {
	id := e.w.ExecutionID
	st, code, err := w.fetch(ctx, id)
	switch {
	case err == nil && st.terminal():
		w.polls.WithLabelValues("terminal").Inc()
		w.finish(ctx, e.w, st, "watcher")
		return
	case err == nil:
		w.polls.WithLabelValues("running").Inc()
	default:
		w.polls.WithLabelValues("error").Inc()
		lvl := slog.LevelDebug
		if code == http.StatusUnauthorized || code == http.StatusForbidden || errors.Is(err, errCredentials) {
			lvl = slog.LevelError // misconfigured watcher credentials: say so loudly
		}
		w.log.Log(ctx, lvl, "execution poll failed", "execution_id", id, "status", code, "err", err)
	}
	if w.opts.Now().Sub(e.w.Since) > w.opts.GiveUpAfter {
		w.abandon(e.w, "no terminal status within watcher.give_up_after")
		return
	}
	w.release(id, true)
}

func (w *Watcher) release(id string, backoff bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.pending[id]
	if !ok {
		return
	}
	e.busy = false
	if backoff {
		e.attempts++
		d := w.opts.Interval << min(e.attempts, 16)
		if d > w.opts.MaxInterval || d <= 0 {
			d = w.opts.MaxInterval
		}
		e.next = w.opts.Now().Add(d)
	}
}

// errCredentials marks a poll that could not be authorized (token endpoint or token file).
var errCredentials = errors.New("watcher credentials")

func (w *Watcher) fetch(ctx context.Context, id string) (status, int, error) {
	st, code, err := w.fetchOnce(ctx, id)
	if code == http.StatusUnauthorized && w.opts.Credentials != nil {
		// The token expired or was revoked early: once more with a new one.
		w.opts.Credentials.Invalidate()
		st, code, err = w.fetchOnce(ctx, id)
	}
	return st, code, err
}

func (w *Watcher) fetchOnce(ctx context.Context, id string) (status, int, error) {
	u := *w.opts.Upstream
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/executions/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return status{}, 0, err
	}
	if w.opts.APIKey != "" {
		req.Header.Set("X-API-Key", w.opts.APIKey)
	}
	if w.opts.Authorization != "" {
		req.Header.Set("Authorization", w.opts.Authorization)
	}
	if w.opts.Credentials != nil {
		if err := w.opts.Credentials.Apply(ctx, req); err != nil {
			return status{}, 0, fmt.Errorf("%w: %w", errCredentials, err)
		}
	}
	req.Header.Set("User-Agent", "flowker-audit-watcher")
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return status{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return status{}, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return status{}, resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
	}
	st, err := parseStatus(body)
	return st, resp.StatusCode, err
}

// flowkerErrorMetadata mirrors what Flowker's runner writes as metadata "error": the sentinel
// FLK-0504 for node-level failures (whose errorMessage starts with `node "`), else the message.
func flowkerErrorMetadata(msg string) string {
	if strings.HasPrefix(msg, `node "`) {
		return "FLK-0504"
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return msg
}

func (w *Watcher) finish(ctx context.Context, x journal.Watch, st status, via string) {
	wf := st.WorkflowID
	if wf == "" {
		wf = x.WorkflowID
	}
	d := journal.Draft{
		EventID: newID(), Action: chain.ActionExecute, ResourceID: x.ExecutionID, ResourceType: chain.ResourceExecution,
		Actor: chain.Actor{Type: chain.ActorSystem, ID: "flowker", IPAddress: "0.0.0.0"},
		Once:  "exec-end:" + x.ExecutionID, Unwatch: x.ExecutionID,
	}
	meta := map[string]any{}
	if wf != "" {
		meta["workflow.id"] = wf
	}
	cx := map[string]any{"observedVia": via, "status": st.Status, "watchedSince": x.Since.UTC().Format(time.RFC3339Nano)}
	if st.StartedAt != "" {
		cx["startedAt"] = st.StartedAt
	}
	if st.CompletedAt != "" {
		cx["completedAt"] = st.CompletedAt
	}
	if st.TotalSteps != "" {
		cx["totalSteps"] = st.TotalSteps
	}
	if st.CurrentStepNumber != "" {
		cx["currentStepNumber"] = st.CurrentStepNumber
	}
	if st.Status == "completed" {
		d.EventType, d.Result = chain.ExecutionCompleted, chain.ResultSuccess
	} else {
		d.EventType, d.Result = chain.ExecutionFailed, chain.ResultFailed
		meta["error"] = flowkerErrorMetadata(sanitize(st.ErrorMessage))
		if st.ErrorMessage != "" {
			cx["errorMessage"] = sanitize(st.ErrorMessage)
		}
	}
	d.Context, d.Metadata = canon(cx), canon(meta)
	ev, err := w.opts.Journal.Append(ctx, d)
	switch {
	case err == nil:
		w.log.Debug("execution outcome recorded", "execution_id", x.ExecutionID, "event_type", ev.EventType, "via", via)
		if w.opts.OnEvent != nil {
			w.opts.OnEvent(ev)
		}
		w.drop(x.ExecutionID)
	case errors.Is(err, journal.ErrDuplicate):
		_ = w.opts.Journal.Unwatch(x.ExecutionID)
		w.drop(x.ExecutionID)
	default:
		w.log.Error("could not journal an execution outcome; will retry", "execution_id", x.ExecutionID, "err", err)
		w.release(x.ExecutionID, true)
	}
}

func (w *Watcher) abandon(x journal.Watch, why string) {
	w.abandoned.Inc()
	w.log.Warn("giving up on an execution's outcome", "execution_id", x.ExecutionID, "since", x.Since, "reason", why)
	if err := w.opts.Journal.Unwatch(x.ExecutionID); err != nil {
		w.log.Error("could not remove a watch entry", "execution_id", x.ExecutionID, "err", err)
	}
	w.drop(x.ExecutionID)
}

func (w *Watcher) drop(id string) {
	w.mu.Lock()
	delete(w.pending, id)
	w.pendingGauge.Set(float64(len(w.pending)))
	w.mu.Unlock()
}

// Pending returns the number of executions being watched.
func (w *Watcher) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

func canon(v map[string]any) []byte {
	b, err := json.Marshal(v)
	if err == nil {
		if out, err := jsonb.Canonical(b); err == nil {
			return out
		}
	}
	return []byte("{}")
}

func sanitize(s string) string { return chain.CleanText(s, 0) }

func newID() string {
	if u, err := uuid.NewV7(); err == nil {
		return u.String()
	}
	return uuid.NewString()
}
