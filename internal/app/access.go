package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// The access trail (access_events in the configuration): every authenticated call of the audit
// API becomes an AUDIT_TRAIL_READ event on a chain of its own, "<chain id>-access", with its own
// journal (<data_dir>/access-journal.db) and its own sinks. Nothing of it reaches the journal,
// the chain or the sinks of the audit events, so the Flowker-compatible /v1/audit-events (search,
// paging, verify) is exactly what it is without it, and a full or broken access journal never
// refuses a Flowker write. The events are read under /v1/audit-access-events.
//
// No feedback loop: recording an event is not a read, so a call makes exactly one event. Reads
// of the access trail are recorded too (on the same access chain), one event per call: reading
// it grows it by one event per call, never more.

// Access event fields. None is one of Flowker's: the event type, action and resource type are
// the sidecar's own, like EXECUTOR_CONFIG_UPDATED.
const (
	AccessEventType    = "AUDIT_TRAIL_READ"
	AccessAction       = "READ"
	AccessResourceType = "audit_trail"
	// AccessChainSuffix follows the chain id in the access chain's id.
	AccessChainSuffix = "-access"
	// accessSinkPrefix names the access sinks' supervisors (metric labels, plugin processes).
	accessSinkPrefix = "access-"
	// accessAppendTimeout bounds how long recording one read may wait for the access journal.
	accessAppendTimeout = 10 * time.Second
)

// accessTrail is the running access trail.
type accessTrail struct {
	journal     *journal.Journal
	recovery    *journal.Recovery
	supervisors []*host.Supervisor
	configs     []host.SinkConfig
	query       *host.Supervisor
	log         *slog.Logger

	recorded prometheus.Counter
	lost     *prometheus.CounterVec
}

// openAccessTrail opens the access journal and prepares its sinks' supervisors (nil when
// access_events is off).
func (a *App) openAccessTrail(o Options, sinkMetrics *host.Metrics) (*accessTrail, error) {
	cfg := a.cfg
	if !cfg.AccessEvents.Enabled {
		return nil, nil
	}
	t := &accessTrail{log: a.log.With("component", "access-trail")}
	t.recorded = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowker_audit", Subsystem: "access", Name: "events_recorded_total",
		Help: "Reads of the audit API recorded as AUDIT_TRAIL_READ events in the access trail (access_events.enabled)."})
	t.lost = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowker_audit", Subsystem: "access", Name: "events_lost_total",
		Help: "Reads of the audit API that could not be recorded in the access journal (answered anyway), by reason."}, []string{"reason"})
	for _, reason := range []string{"encode", "error", "journal_full", "journal_closed"} {
		t.lost.WithLabelValues(reason) // exported at zero, so that an alert sees the first loss
	}
	for _, c := range []prometheus.Collector{t.recorded, t.lost} {
		if err := a.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register access trail metrics: %w", err)
		}
	}
	j, rec, err := journal.Open(journal.Options{
		Path: filepath.Join(cfg.DataDir, "access-journal.db"), ChainID: a.journal.ChainID() + AccessChainSuffix,
		MaxBytes: int64(cfg.AccessEvents.MaxBytes), NoSync: !cfg.Journal.Fsync, Logger: t.log.With("journal", "access"),
	})
	if err != nil {
		return nil, fmt.Errorf("access journal: %w", err)
	}
	if rec.ChainID != a.journal.ChainID()+AccessChainSuffix {
		_ = j.Close()
		return nil, fmt.Errorf("access journal %s holds chain %q, not %q: it belongs to another chain (move it away)",
			filepath.Join(cfg.DataDir, "access-journal.db"), rec.ChainID, a.journal.ChainID()+AccessChainSuffix)
	}
	t.journal, t.recovery = j, rec
	t.log.Info("access journal open", "chain_id", rec.ChainID, "last_sequence", rec.Last, "fresh", rec.Fresh, "records_cut", rec.CutCount)
	for _, s := range cfg.AccessEvents.Sinks {
		config.SinkDefaults(&s)
		raw, err := json.Marshal(s.Config)
		if err != nil {
			_ = j.Close()
			return nil, fmt.Errorf("access_events sink %s: config: %w", s.Name, err)
		}
		launch, err := LaunchOptions(s, o.PluginCommand)
		if err != nil {
			_ = j.Close()
			return nil, err
		}
		sc := host.SinkConfig{Name: accessSinkPrefix + s.Name, Plugin: s.Plugin, Launch: launch, Config: raw, Query: s.Query,
			BatchSize: s.BatchSize, BatchBytes: int(s.BatchBytes), BatchInterval: s.BatchInterval.D(), WriteTimeout: s.WriteTimeout.D()}
		if o.SinkTuning != nil {
			o.SinkTuning(&sc)
		}
		t.configs = append(t.configs, sc)
		sup := host.NewSupervisor(sc, j, sinkMetrics, t.log)
		t.supervisors = append(t.supervisors, sup)
		if s.Query {
			t.query = sup
		}
	}
	return t, nil
}

// rebase continues a new or damaged access journal after the highest head its sinks hold, so
// that no access sequence number is used twice.
func (a *App) rebaseAccess(ctx context.Context, wait time.Duration) error {
	t := a.access
	if t == nil || (!t.recovery.Fresh && t.recovery.CutCount == 0) {
		return nil
	}
	var best sink.Head
	for _, sc := range t.configs {
		h, err := a.sinkHeadRetrying(ctx, sc, t.journal.ChainID(), wait)
		if err != nil {
			return fmt.Errorf("the access journal is new or lost its tail, and access sink %q could not tell its head within %s: %w", sc.Name, wait, err)
		}
		if h.Found && h.Sequence > best.Sequence {
			best = h
		}
	}
	if best.Sequence > t.journal.Last() {
		t.log.Warn("the access journal is behind its sinks: continuing the access chain after their head", "journal_last", t.journal.Last(), "sink_head", best.Sequence)
		if err := t.journal.Rebase(ctx, best.Sequence, best.Hash, time.Now()); err != nil {
			return fmt.Errorf("continuing the access chain after sequence %d: %w", best.Sequence, err)
		}
	}
	return nil
}

// accessQuerier returns the access trail's query sink.
func (a *App) accessQuerier(context.Context) (sink.Querier, error) {
	if a.access == nil || a.access.query == nil {
		return nil, ErrQuerySinkDown
	}
	return a.access.query.Querier()
}

// record journals one read as an access event. The read has been answered already: a failure is
// counted and logged, never turned into an error for the reader.
func (t *accessTrail) record(ctx context.Context, read auditapi.Read) {
	d, err := AccessDraft(read)
	if err != nil {
		t.lost.WithLabelValues("encode").Inc()
		t.log.Error("cannot encode an access event", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessAppendTimeout)
	defer cancel()
	if _, err := t.journal.Append(ctx, d); err != nil {
		reason := "error"
		switch {
		case errors.Is(err, journal.ErrFull):
			reason = "journal_full"
		case errors.Is(err, journal.ErrClosed):
			reason = "journal_closed"
		}
		t.lost.WithLabelValues(reason).Inc()
		t.log.Error("a read of the audit trail could not be recorded in the access journal", "caller", read.Caller, "endpoint", read.Endpoint, "err", err)
		return
	}
	t.recorded.Inc()
}

// accessContext is the context of an access event (canonical jsonb text once encoded).
type accessContext struct {
	Endpoint   string            `json:"endpoint"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Filters    map[string]string `json:"filters,omitempty"`
	EventID    string            `json:"eventId,omitempty"`
	Status     int               `json:"status"`
	Rows       int               `json:"rows"`
	DurationMs float64           `json:"durationMs"`
	CallerName string            `json:"callerName,omitempty"`
}

// AccessDraft turns a read into the draft of its AUDIT_TRAIL_READ event: the actor is the
// caller (an API key's fingerprint, as in the audit events, so identity.api_key_names apply),
// the resource the event read (get, verify) or the endpoint, the context the route, filters,
// status and rows.
func AccessDraft(read auditapi.Read) (journal.Draft, error) {
	actor := chain.Actor{Type: chain.ActorUser, ID: read.Caller}
	if strings.HasPrefix(read.Caller, "key:") {
		actor.Type = chain.ActorAPIKey
	}
	if host, _, err := net.SplitHostPort(read.RemoteAddr); err == nil {
		actor.IPAddress = host
	}
	result := chain.ResultSuccess
	if read.Status >= 400 {
		result = chain.ResultFailed
	}
	resource := read.EventID
	if resource == "" {
		resource = read.Endpoint
	}
	raw, err := json.Marshal(accessContext{Endpoint: read.Endpoint, Method: read.Method, Path: read.Path, Filters: read.Filters,
		EventID: read.EventID, Status: read.Status, Rows: read.Rows, DurationMs: float64(read.Duration.Microseconds()) / 1000,
		CallerName: read.CallerName})
	if err != nil {
		return journal.Draft{}, fmt.Errorf("access event context: %w", err)
	}
	ctxJSON, err := jsonb.Canonical(raw)
	if err != nil {
		return journal.Draft{}, fmt.Errorf("access event context: %w", err)
	}
	return journal.Draft{EventID: uuid.NewString(), EventType: AccessEventType, Action: AccessAction, Result: result,
		ResourceID: resource, ResourceType: AccessResourceType, Actor: actor, Context: ctxJSON, Metadata: []byte("{}")}, nil
}

// run runs the access sinks' supervisors and compacts the access journal until ctx ends.
func (t *accessTrail) run(ctx context.Context, wg *sync.WaitGroup, every time.Duration) {
	for _, s := range t.supervisors {
		wg.Add(1)
		go func(s *host.Supervisor) {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.log.Error("access sink supervisor stopped", "sink", s.Name(), "err", err)
			}
		}(s)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			t.compact(ctx)
		}
	}()
}

// compact removes from the access journal what every access sink acknowledged.
func (t *accessTrail) compact(ctx context.Context) {
	upTo := uint64(0)
	for i, s := range t.supervisors {
		c, err := t.journal.Cursor(s.Name())
		if err != nil {
			t.log.Warn("reading an access sink cursor", "sink", s.Name(), "err", err)
			return
		}
		if i == 0 || c < upTo {
			upTo = c
		}
	}
	if upTo == 0 {
		return
	}
	if _, err := t.journal.Compact(ctx, upTo); err != nil {
		t.log.Warn("access journal compaction failed", "err", err)
	}
}

// drain waits (until ctx ends) for the access sinks to acknowledge every access event, then
// compacts.
func (t *accessTrail) drain(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done := true
		for _, s := range t.supervisors {
			if s.Lag() > 0 {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			for _, s := range t.supervisors {
				if lag := s.Lag(); lag > 0 {
					t.log.Warn("access events not delivered at shutdown stay in the access journal", "sink", s.Name(), "events", lag)
				}
			}
			return
		case <-tick.C:
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.compact(cctx)
}

// ready adds the access sinks to a readiness answer; they never make the sidecar unready.
func (t *accessTrail) ready(r *Readiness) {
	for _, s := range t.supervisors {
		ok, why := s.Ready()
		c := CheckResult{Status: "up", Query: s == t.query, Lag: s.Lag()}
		if !ok {
			c.Status, c.Error = "down", why
		}
		r.Checks["access-sink:"+strings.TrimPrefix(s.Name(), accessSinkPrefix)] = c
	}
}
