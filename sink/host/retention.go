package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/sink"
)

// AnchorSigner signs the retention anchor of the event (chainID, seq, hash) for events older than
// cutoff, at time now (chain/checkpoint.Signer.SignAnchor with the checkpoint key).
type AnchorSigner func(chainID string, seq uint64, hash string, cutoff, now time.Time) (sink.RetentionAnchor, error)

// Retention removes old events from the sinks that have a `retention` period, in the background
// and in whole blocks of each sink's storage.
//
// For each such sink and each pass it computes a bound: the lowest sequence acknowledged by
// every sink, minus one (so no sink ever loses an event that another sink has not stored yet,
// and every sink keeps its head event). It asks the plugin for the newest event at or below the
// bound that ends a whole block of events all older than now - retention (sink.Retainer
// PlanRetention), checks its hash against the journal when the journal still holds it, signs a
// retention anchor of it with the checkpoint key and hands the anchor to the plugin, which stores
// it and only then removes the events up to it (Retain). It repeats until nothing more can go.
// Verification then starts after the anchor (chain/checkpoint.Verify).
type Retention struct {
	Sinks   []*Supervisor // every sink: each one's acknowledged cursor bounds what may be removed
	Source  Source
	Sign    AnchorSigner
	Metrics *RetentionMetrics // nil: unregistered metrics
	Logger  *slog.Logger      // nil: discard
	Now     func() time.Time  // nil: time.Now (tests inject a clock)
	// MaxBlocks bounds the blocks one pass removes per sink (0: 10,000), so a first pass over
	// years of events yields to the next tick instead of running unbounded.
	MaxBlocks int
}

// RetentionMetrics are the retention driver's Prometheus metrics, by sink.
type RetentionMetrics struct {
	events *prometheus.CounterVec
	blocks *prometheus.CounterVec
	anchor *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

// NewRetentionMetrics registers the retention metrics on reg (nil: not registered).
func NewRetentionMetrics(reg prometheus.Registerer) *RetentionMetrics {
	const ns, sub = "flowker_audit", "retention"
	l := []string{"sink"}
	m := &RetentionMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "removed_events_total",
			Help: "Events removed from the sink by retention."}, l),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "removed_blocks_total",
			Help: "Whole blocks (delete batches, partitions, files) removed from the sink by retention."}, l),
		anchor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "anchor_sequence",
			Help: "Sequence of the newest signed retention anchor stored in the sink (the last removed event)."}, l),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed retention passes of the sink (planning, signing, removing, or a plugin that cannot retain)."}, l),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.blocks, m.anchor, m.errors)
	}
	return m
}

// Init creates the series of a sink that has a retention period, at zero, so that they are
// exported (and alertable) before its first pass.
func (m *RetentionMetrics) Init(sinkName string) {
	m.events.WithLabelValues(sinkName)
	m.blocks.WithLabelValues(sinkName)
	m.anchor.WithLabelValues(sinkName)
	m.errors.WithLabelValues(sinkName)
}

// ErrNoRetention means a sink has a retention period but its plugin does not implement
// sink.Retainer.
var ErrNoRetention = errors.New("the sink's plugin cannot apply retention (it does not implement sink.Retainer)")

// retainer returns the running plugin of s and its capabilities; ok false while it is down or in
// conflict with the journal (then nothing is removed from it).
func (s *Supervisor) retainer() (*sink.Client, sink.Capabilities, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil || s.conflict != "" {
		return nil, sink.Capabilities{}, false
	}
	return s.client, s.caps, true
}

// Run applies retention every interval until ctx ends.
func (r *Retention) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.Apply(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Retention) defaults() {
	if r.Metrics == nil {
		r.Metrics = NewRetentionMetrics(nil)
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MaxBlocks <= 0 {
		r.MaxBlocks = 10000
	}
}

// Bound returns the highest sequence retention may remove from any sink: one below the lowest
// cursor acknowledged by every sink (0: nothing).
func (r *Retention) Bound() (uint64, error) {
	var low uint64
	for i, s := range r.Sinks {
		c, err := r.Source.Cursor(s.Name())
		if err != nil {
			return 0, fmt.Errorf("cursor of sink %s: %w", s.Name(), err)
		}
		if i == 0 || c < low {
			low = c
		}
	}
	if low <= 1 {
		return 0, nil
	}
	return low - 1, nil
}

// Apply runs one retention pass over every sink with a retention period. Failures are logged and
// counted per sink; the next pass retries.
func (r *Retention) Apply(ctx context.Context) {
	r.defaults()
	for _, s := range r.Sinks {
		if s.cfg.Retention <= 0 {
			continue
		}
		if _, err := r.ApplySink(ctx, s); err != nil && ctx.Err() == nil {
			r.Metrics.errors.WithLabelValues(s.Name()).Inc()
			r.Logger.Error("retention", "sink", s.Name(), "err", err)
		}
	}
}

// ApplySink runs one retention pass over sink s and returns what it removed.
func (r *Retention) ApplySink(ctx context.Context, s *Supervisor) (sink.RetentionResult, error) {
	r.defaults()
	var total sink.RetentionResult
	c, caps, ok := s.retainer()
	if !ok {
		return total, nil // down or in conflict: nothing is removed until it is healthy
	}
	if !caps.Retention {
		return total, fmt.Errorf("sink %s (plugin %s): %w", s.Name(), s.cfg.Plugin, ErrNoRetention)
	}
	chainID := r.Source.ChainID()
	for range r.MaxBlocks {
		bound, err := r.Bound()
		if err != nil || bound == 0 {
			return total, err
		}
		now := r.Now()
		cutoff := now.Add(-s.cfg.Retention)
		cctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
		plan, err := c.PlanRetention(cctx, chainID, cutoff, bound)
		cancel()
		if err != nil {
			return total, fmt.Errorf("planning retention: %w", err)
		}
		if !plan.Found {
			return total, nil
		}
		if plan.Sequence > bound {
			return total, fmt.Errorf("the plugin planned to remove up to sequence %d, beyond the bound %d every sink acknowledged", plan.Sequence, bound)
		}
		if err := r.checkHash(ctx, plan); err != nil {
			return total, err
		}
		a, err := r.Sign(chainID, plan.Sequence, plan.Hash, cutoff, now)
		if err != nil {
			return total, fmt.Errorf("signing the retention anchor of sequence %d: %w", plan.Sequence, err)
		}
		cctx, cancel = context.WithTimeout(ctx, s.cfg.WriteTimeout)
		res, err := c.Retain(cctx, a)
		cancel()
		if err != nil {
			return total, fmt.Errorf("removing events up to sequence %d: %w", plan.Sequence, err)
		}
		total.Events += res.Events
		total.Blocks += res.Blocks
		r.Metrics.events.WithLabelValues(s.Name()).Add(float64(res.Events))
		r.Metrics.blocks.WithLabelValues(s.Name()).Add(float64(res.Blocks))
		r.Metrics.anchor.WithLabelValues(s.Name()).Set(float64(a.Sequence))
		r.Logger.Info("retention removed events", "sink", s.Name(), "chain_id", chainID, "up_to_sequence", a.Sequence,
			"events", res.Events, "blocks", res.Blocks, "cutoff", cutoff.UTC().Format(time.RFC3339))
		if res.Events == 0 {
			return total, nil // nothing left to remove below the anchor (a retry after a failure)
		}
	}
	return total, nil
}

// checkHash compares the planned event's hash with the journal's copy while the journal still
// holds it, so a store cannot have the sidecar sign an anchor with a hash of its choosing.
func (r *Retention) checkHash(ctx context.Context, plan sink.Head) error {
	evs, err := r.Source.Read(ctx, plan.Sequence, 1, 1<<20)
	if err != nil || len(evs) == 0 || evs[0].Sequence != plan.Sequence {
		return nil // no longer journaled: the anchor's hash is checked by verification (the next event links to it)
	}
	if evs[0].Hash != plan.Hash {
		return fmt.Errorf("the sink holds hash %s at sequence %d, the journal %s: not removing anything", plan.Hash, plan.Sequence, evs[0].Hash)
	}
	return nil
}
