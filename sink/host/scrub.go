package host

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
)

// ScrubConfig configures the background scrub of a query sink (Scrubber).
type ScrubConfig struct {
	// Interval is the time between two scrub steps. 0 or less disables the scrub.
	Interval time.Duration
	// Batch is the most events one step verifies. Default 100000.
	Batch int
	// Evidence returns the signed checkpoints to check the chain against (nil: none, only hashes
	// and links are checked).
	Evidence func(chainID string) (*checkpoint.Evidence, error)
}

// ScrubMetrics are the scrub's metrics, one set per process.
type ScrubMetrics struct {
	problem  *prometheus.GaugeVec
	problems *prometheus.CounterVec
	problSeq *prometheus.GaugeVec
	events   *prometheus.CounterVec
	lastPass *prometheus.GaugeVec
	errors   *prometheus.CounterVec
}

// NewScrubMetrics creates the scrub metrics and registers them with reg (nil: not registered).
func NewScrubMetrics(reg prometheus.Registerer) *ScrubMetrics {
	const ns, sub = "flowker_audit", "sink_scrub"
	l := []string{"sink"}
	m := &ScrubMetrics{
		problem: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "problem",
			Help: "1 while the background scrub finds the query sink's stored chain broken (an edited, deleted, inserted or re-linked row, or a checkpoint mismatch), until a full pass finds it valid again."}, l),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "problems_total",
			Help: "Number of distinct problems the background scrub found in the query sink's stored chain."}, l),
		problSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "problem_sequence",
			Help: "Chain sequence of the problem the scrub reports (0 when none)."}, l),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "verified_events_total",
			Help: "Number of stored events the background scrub verified (every hash, link and checkpoint)."}, l),
		lastPass: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_pass_timestamp_seconds",
			Help: "Unix time at which the scrub last finished a full pass over the sink's acknowledged chain without a problem (0: never)."}, l),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Number of scrub steps that could not read the sink or the checkpoints (retried at the next step)."}, l),
	}
	if reg != nil {
		reg.MustRegister(m.problem, m.problems, m.problSeq, m.events, m.lastPass, m.errors)
	}
	return m
}

// Scrubber re-verifies a query sink's stored chain in the background with the shared verifier
// (checkpoint.Verify): hashes, links, gaps, duplicates and the signed checkpoints. Each step
// verifies up to Batch events after the last one it verified, up to what the sink acknowledged;
// at the end it starts over from the sink's first event, so every stored row is checked again
// once per pass: a row edited, inserted or deleted below the delivery cursor (where delivery
// never looks again) is found within a pass. It reads through the sink's Querier and never
// blocks delivery.
type Scrubber struct {
	tgt scrubTarget
	cfg ScrubConfig
	log *slog.Logger

	problem, problSeq, lastPass prometheus.Gauge
	problemsC, events, errors   prometheus.Counter

	// scan position (only Run's goroutine)
	pos      uint64 // next sequence to verify (0: start a pass)
	prevHash string // hash of pos-1 as read in this pass
	passBad  bool   // a problem was found in this pass

	mu     sync.Mutex
	report string // the problem reported now ("" none)
}

// scrubTarget is what the scrub reads: the sink's querier (while its plugin runs), the chain and
// the sequence the sink acknowledged.
type scrubTarget struct {
	name    string
	querier func() (sink.Querier, error)
	chainID func() string
	acked   func() uint64
}

// NewScrubber returns a scrubber of sup's store. m nil creates unregistered metrics; log nil
// discards.
func NewScrubber(sup *Supervisor, cfg ScrubConfig, m *ScrubMetrics, log *slog.Logger) *Scrubber {
	return newScrubber(scrubTarget{name: sup.Name(), querier: sup.Querier, chainID: sup.src.ChainID, acked: sup.acked.Load}, cfg, m, log)
}

func newScrubber(tgt scrubTarget, cfg ScrubConfig, m *ScrubMetrics, log *slog.Logger) *Scrubber {
	if cfg.Batch <= 0 {
		cfg.Batch = 100000
	}
	if m == nil {
		m = NewScrubMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := tgt.name
	sc := &Scrubber{tgt: tgt, cfg: cfg, log: log.With("sink", n, "component", "scrub"),
		problem: m.problem.WithLabelValues(n), problSeq: m.problSeq.WithLabelValues(n), lastPass: m.lastPass.WithLabelValues(n),
		problemsC: m.problems.WithLabelValues(n), events: m.events.WithLabelValues(n), errors: m.errors.WithLabelValues(n)}
	return sc
}

// Problem returns what the scrub found wrong with the stored chain ("" when nothing), for
// readiness.
func (sc *Scrubber) Problem() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.report
}

// Run scrubs every Interval until ctx ends.
func (sc *Scrubber) Run(ctx context.Context) {
	if sc.cfg.Interval <= 0 {
		return
	}
	t := time.NewTicker(sc.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := sc.Step(ctx); err != nil && ctx.Err() == nil {
			sc.errors.Inc()
			sc.log.Warn("scrub step failed; retrying at the next one", "error", err, "in", sc.cfg.Interval)
		}
	}
}

// Step verifies the next batch of stored events (Run calls it every Interval; tests call it
// directly). It returns an error only when the sink or the checkpoints could not be read.
func (sc *Scrubber) Step(ctx context.Context) error {
	q, err := sc.tgt.querier()
	if err != nil {
		return err
	}
	chainID := sc.tgt.chainID()
	acked := sc.tgt.acked()
	if sc.pos == 0 || sc.pos > acked {
		if sc.pos > acked && sc.pos > 1 {
			sc.passDone()
		}
		// A new pass, from the sink's first stored event (its link is trusted: a store may
		// keep only the newer part of a chain).
		chains, err := q.Chains(ctx)
		if err != nil {
			return fmt.Errorf("listing the sink's chains: %w", err)
		}
		sc.pos, sc.prevHash, sc.passBad = 0, "", false
		for _, c := range chains {
			if c.ChainID == chainID && c.Count > 0 {
				sc.pos = max(c.First, 1)
			}
		}
		if sc.pos == 0 || sc.pos > acked {
			sc.pos = 0
			return nil // nothing acknowledged and stored yet
		}
		if sc.pos > 1 {
			err := q.ReadChain(ctx, chainID, sc.pos, sc.pos, func(e *chain.Event) error {
				sc.prevHash = e.PreviousHash
				return nil
			})
			if err != nil {
				return fmt.Errorf("reading sequence %d: %w", sc.pos, err)
			}
		}
	}
	to := min(acked, sc.pos+uint64(sc.cfg.Batch)-1)
	var ev *checkpoint.Evidence
	if sc.cfg.Evidence != nil {
		if ev, err = sc.cfg.Evidence(chainID); err != nil {
			return fmt.Errorf("loading the checkpoints: %w", err)
		}
	}
	var last chain.Event
	read := func(ctx context.Context, id string, from, to uint64, fn func(*chain.Event) error) error {
		return q.ReadChain(ctx, id, from, to, func(e *chain.Event) error {
			last = *e
			return fn(e)
		})
	}
	r, err := checkpoint.Verify(ctx, read, checkpoint.Request{ChainID: chainID, From: sc.pos, PrevHash: sc.prevHash, To: to, Evidence: ev})
	if err != nil {
		return fmt.Errorf("reading sequences %d..%d: %w", sc.pos, to, err)
	}
	sc.events.Add(float64(r.Checked))
	if p := r.Problem; p != nil {
		sc.found(p, r)
		sc.pos = 0 // the next step starts a new pass
		return nil
	}
	sc.pos, sc.prevHash = to+1, last.Hash
	if sc.pos > acked {
		sc.passDone()
		sc.pos = 0
	}
	return nil
}

// found reports a problem (logged at error level when it differs from the one reported).
func (sc *Scrubber) found(p *chain.Problem, r checkpoint.Report) {
	sc.passBad = true
	what := fmt.Sprintf("the stored chain %s is broken at sequence %d (%s): %s", p.ChainID, p.Sequence, p.Reason, p.Detail)
	sc.mu.Lock()
	changed := sc.report != what
	sc.report = what
	sc.mu.Unlock()
	sc.problem.Set(1)
	sc.problSeq.Set(float64(p.Sequence))
	if changed {
		sc.problemsC.Inc()
		sc.log.Error("scrub: the query sink's stored chain is broken (see OPERATIONS: scrub problems; flowker-audit verify names it too)",
			"chain_id", p.ChainID, "sequence", p.Sequence, "reason", p.Reason, "event_id", p.EventID, "detail", p.Detail,
			"verified_from", r.From, "verified_before_it", r.Checked)
	}
}

// passDone ends a full pass; one without a problem clears what was reported.
func (sc *Scrubber) passDone() {
	if sc.passBad {
		return
	}
	sc.lastPass.Set(float64(time.Now().Unix()))
	sc.mu.Lock()
	had := sc.report
	sc.report = ""
	sc.mu.Unlock()
	if had != "" {
		sc.problem.Set(0)
		sc.problSeq.Set(0)
		sc.log.Warn("scrub: a full pass found the query sink's stored chain valid again", "was", had)
	}
	sc.log.Debug("scrub pass complete")
}
