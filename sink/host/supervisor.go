package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// ErrSinkDown is returned (wrapped) by Supervisor.Querier while the sink's plugin is not running:
// starting, restarting after a crash, or refused at start.
var ErrSinkDown = errors.New("sink is down")

// SinkConfig configures one sink's supervisor. Zero durations and sizes take the defaults
// documented on each field.
type SinkConfig struct {
	// Name is the sink's name from the configuration; it labels metrics and logs and names the
	// sink's delivery cursor in the journal.
	Name string
	// Plugin is the plugin's name (clickhouse, sqlite, file, or an external one), for logs.
	Plugin string
	// Launch says how to start the plugin process. Launch.Logger defaults to the supervisor's
	// logger and Launch.Name to Name.
	Launch sink.LaunchOptions
	// Config is the JSON form of the sink's `config:` block, passed to Configure.
	Config []byte
	// Query marks the sink that answers the audit API: its plugin must report the Query
	// capability.
	Query bool

	// BatchSize is the most events per Write. Default 1000.
	BatchSize int
	// BatchBytes is the most encoded bytes per Write (at least one event is always sent).
	// Default 8 MiB.
	BatchBytes int
	// BatchInterval is how long delivery waits for a batch to fill before sending a smaller one.
	// Default 200ms; negative sends at once.
	BatchInterval time.Duration
	// WriteTimeout bounds one Write call; a Write that runs past it counts as a hung plugin,
	// which is killed and restarted. Default 30s.
	WriteTimeout time.Duration
	// CallTimeout bounds the other calls (Configure, Capabilities, Head, Ping, Close). Default 10s.
	CallTimeout time.Duration
	// PingInterval is the period of the health check. Default 5s.
	PingInterval time.Duration
	// WatermarkInterval is how often a caught-up delivery sends the sink a delivery watermark,
	// when the plugin keeps them (sink.WatermarkWriter). Default 1s; negative sends none.
	WatermarkInterval time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff (with jitter) between retries of a
	// failed write and between plugin restarts. A sink failing permanently is retried every
	// MaxBackoff, so that an operator's fix is picked up. Defaults 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// RestartBudget is the most plugin restarts within RestartWindow; past it the supervisor
	// waits RestartCooldown before the next one. Defaults 5, 1m and 5m.
	RestartBudget   int
	RestartWindow   time.Duration
	RestartCooldown time.Duration
	// Retention, when positive, is how long the sink keeps events: a Retention driver removes
	// older ones in the background (retention.go). The plugin must implement sink.Retainer.
	Retention time.Duration
	// StopTimeout bounds the graceful stop when Run's context ends: the write in flight may
	// finish and be acknowledged, then Close is called, then the process is killed. Default 10s.
	StopTimeout time.Duration
}

func (c SinkConfig) withDefaults() SinkConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 8 << 20
	}
	c.BatchBytes = min(c.BatchBytes, sink.MaxMessageBytes/2)
	def(&c.BatchInterval, 200*time.Millisecond)
	def(&c.WriteTimeout, 30*time.Second)
	def(&c.CallTimeout, 10*time.Second)
	def(&c.PingInterval, 5*time.Second)
	def(&c.WatermarkInterval, time.Second)
	def(&c.MinBackoff, 200*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.RestartBudget <= 0 {
		c.RestartBudget = 5
	}
	def(&c.RestartWindow, time.Minute)
	def(&c.RestartCooldown, 5*time.Minute)
	def(&c.StopTimeout, 10*time.Second)
	return c
}

// Supervisor runs one sink: it starts the plugin, delivers the journal to it and keeps it alive.
// Create it with NewSupervisor and call Run once; the other methods may be called from any
// goroutine at any time.
type Supervisor struct {
	cfg SinkConfig
	src Source
	m   *sinkMetrics
	log *slog.Logger

	running atomic.Bool
	acked   atomic.Uint64 // last acknowledged sequence as known to delivery
	noWM    *sink.Client  // the plugin run that declined watermarks (watermark.go); delivery's goroutine only
	greeted *sink.Client  // the plugin run that got its first heartbeat (watermark.go); delivery's goroutine only

	mu       sync.Mutex
	client   *sink.Client // the configured, running plugin; nil while down
	caps     sink.Capabilities
	failed   string // non-empty while the sink fails permanently
	failedOp string // what failed: "start", "head" or "write"
	down     string // why client is nil
	conflict string // non-empty while the sink's store disagrees with the journal

	// forkedHead is a head found holding another hash than the journal's (delivery goroutine
	// only): while the sink still reports it, it stays a conflict even once the journal no
	// longer holds that sequence (its head moved on and compaction removed it).
	forkedHead sink.Head

	cpPending []sink.Checkpoint // signed checkpoints not yet handed to the sink
	cpNotify  chan struct{}
}

// NewSupervisor returns a supervisor for cfg that delivers src. m may be shared by several
// supervisors; nil creates unregistered metrics. log nil discards.
func NewSupervisor(cfg SinkConfig, src Source, m *Metrics, log *slog.Logger) *Supervisor {
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("sink", cfg.Name, "plugin", cfg.Plugin)
	if cfg.Launch.Logger == nil {
		cfg.Launch.Logger = log
	}
	if cfg.Launch.Name == "" {
		cfg.Launch.Name = cfg.Name
	}
	return &Supervisor{cfg: cfg, src: src, m: m.forSink(cfg.Name), log: log, down: "not started", cpNotify: make(chan struct{}, 1)}
}

// Name returns the sink's name.
func (s *Supervisor) Name() string { return s.cfg.Name }

// Ready reports whether the sink is running and accepting events, and why not otherwise.
// Retryable write errors (a store that is briefly unreachable) do not make a sink unready; they
// show in the error and lag metrics.
func (s *Supervisor) Ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.conflict != "":
		return false, fmt.Sprintf("sink %s conflicts with the journal (delivery stopped): %s", s.cfg.Name, s.conflict)
	case s.client == nil:
		return false, fmt.Sprintf("sink %s is down: %s", s.cfg.Name, s.down)
	case s.failed != "":
		return false, fmt.Sprintf("sink %s is failing: %s", s.cfg.Name, s.failed)
	}
	return true, ""
}

// Querier returns the running plugin as a Querier. It fails with an error wrapping ErrSinkDown
// while the plugin is not running, and with one wrapping sink.ErrUnsupported when the sink is
// not the query sink or its plugin cannot answer queries. The returned Querier may fail later
// if the plugin dies meanwhile; ask again for the next request.
func (s *Supervisor) Querier() (sink.Querier, error) {
	if !s.cfg.Query {
		return nil, fmt.Errorf("sink %s is not configured to answer queries: %w", s.cfg.Name, sink.ErrUnsupported)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil, fmt.Errorf("sink %s: %w: %s", s.cfg.Name, ErrSinkDown, s.down)
	}
	if !s.caps.Query {
		return nil, fmt.Errorf("sink %s: plugin cannot answer queries: %w", s.cfg.Name, sink.ErrUnsupported)
	}
	return s.client, nil
}

// Lag returns the number of journaled events the sink has not acknowledged.
func (s *Supervisor) Lag() uint64 {
	last, acked := s.src.Last(), s.acked.Load()
	if acked >= last {
		return 0
	}
	return last - acked
}

// setUp records a started and configured plugin; a permanent failure of an earlier start is
// over.
func (s *Supervisor) setUp(c *sink.Client, caps sink.Capabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client, s.caps, s.down = c, caps, ""
	if s.failedOp == opStart {
		s.failed, s.failedOp = "", ""
	}
	if s.failed == "" && s.conflict == "" {
		s.m.up.Set(1)
	}
}

// setConflict records that the sink's store disagrees with the journal: delivery to it stops
// (nothing more is acknowledged, so the journal keeps every event from the cursor on) until a
// later check finds the store consistent again. It reports whether the conflict is new.
func (s *Supervisor) setConflict(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	isNew := s.conflict == ""
	s.conflict = reason
	s.m.up.Set(0)
	s.m.conflict.Set(1)
	if isNew {
		s.m.conflicts.Inc()
	}
	return isNew
}

// clearConflict ends a conflict and reports whether there was one.
func (s *Supervisor) clearConflict() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conflict == "" {
		return false
	}
	s.conflict = ""
	s.m.conflict.Set(0)
	if s.client != nil && s.failed == "" {
		s.m.up.Set(1)
	}
	return true
}

func (s *Supervisor) setDown(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client, s.down = nil, reason
	s.m.up.Set(0)
}

// What failed permanently.
const (
	opStart = "start"
	opHead  = "head"
	opWrite = "write"
)

// setFailed records a permanent failure of op.
func (s *Supervisor) setFailed(op, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed, s.failedOp = reason, op
	s.m.up.Set(0)
}

// clearFailed ends a permanent failure of op (any failure when op is opWrite: a stored batch
// proves the sink works) and reports whether there was one.
func (s *Supervisor) clearFailed(op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == "" || (op != opWrite && s.failedOp != op) {
		return false
	}
	s.failed, s.failedOp = "", ""
	if s.client != nil && s.conflict == "" {
		s.m.up.Set(1)
	}
	return true
}

// observe refreshes the lag gauges.
func (s *Supervisor) observe() {
	acked := s.acked.Load()
	s.m.acked.Set(float64(acked))
	last := s.src.Last()
	if last <= acked {
		s.m.lag.Set(0)
		s.m.oldestAge.Set(0)
		return
	}
	s.m.lag.Set(float64(last - acked))
	if t, ok := s.src.AppendedAt(acked + 1); ok {
		s.m.oldestAge.Set(max(time.Since(t).Seconds(), 0))
	} else {
		s.m.oldestAge.Set(0) // not in the journal (a gap): no age to report, never a stale one
	}
}

// stopError tells Run why a plugin run ended and how to go on.
type stopError struct {
	kind      string // a Kind* constant, "" when not counted as an error
	permanent bool   // retry only after MaxBackoff
	err       error
}

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

func stopWith(kind string, err error) *stopError { return &stopError{kind: kind, err: err} }

// Run supervises the sink until ctx is done, then stops it gracefully (bounded by StopTimeout)
// and returns nil. It returns an error only when called twice.
func (s *Supervisor) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("sink %s: supervisor already running", s.cfg.Name)
	}
	if c, err := s.src.Cursor(s.cfg.Name); err == nil {
		s.acked.Store(c)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			s.observe()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer wg.Wait()
	defer s.setDown("stopped")

	restartBackoff := newBackoff(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	var restarts []time.Time
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.m.restarts.Inc()
		}
		progressed, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var se *stopError
		switch {
		case err == nil:
			se = stopWith("", errors.New("plugin run ended"))
		case !errors.As(err, &se):
			se = stopWith(KindCrash, err)
		}
		if se.kind != "" {
			s.m.errors[se.kind].Inc()
		}
		if progressed {
			restartBackoff.reset()
		}
		wait := restartBackoff.next()
		if se.permanent {
			wait = s.cfg.MaxBackoff
		}
		now := time.Now()
		restarts = append(restarts, now)
		for len(restarts) > 0 && now.Sub(restarts[0]) > s.cfg.RestartWindow {
			restarts = restarts[1:]
		}
		if len(restarts) > s.cfg.RestartBudget {
			wait = max(wait, s.cfg.RestartCooldown)
			restarts = nil
			s.log.Error("sink plugin restart budget exhausted; cooling down before the next start",
				"budget", s.cfg.RestartBudget, "window", s.cfg.RestartWindow, "cooldown", wait, "error", err)
		} else {
			s.log.Warn("sink plugin stopped; restarting", "in", wait, "error", err)
		}
		s.setDown(fmt.Sprintf("restarting after: %v", err))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// runOnce starts the plugin and delivers until the plugin must be restarted or ctx is done.
// progressed reports whether at least one batch was stored.
func (s *Supervisor) runOnce(ctx context.Context) (progressed bool, err error) {
	s.setDown("starting")
	c, err := sink.Open(ctx, s.cfg.Launch)
	if err != nil {
		if errors.Is(err, sink.ErrChecksumMismatch) || errors.Is(err, sink.ErrProtocolVersion) {
			s.setFailed(opStart, err.Error())
			s.log.Error("sink plugin refused", "error", err)
			return false, &stopError{kind: KindPermanent, permanent: true, err: err}
		}
		return false, stopWith(KindCrash, err)
	}
	defer func() {
		// A crashed or hung plugin is killed without a Close it could not answer.
		var se *stopError
		graceful := !errors.As(err, &se) || (se.kind != KindCrash && se.kind != KindTimeout)
		s.stop(c, graceful)
	}()

	callCtx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err = c.Configure(callCtx, s.cfg.Config)
	cancel()
	if err != nil {
		return false, s.startError(ctx, c, "configure", err)
	}
	callCtx, cancel = context.WithTimeout(ctx, s.cfg.CallTimeout)
	caps, err := c.Capabilities(callCtx)
	cancel()
	if err != nil {
		return false, s.startError(ctx, c, "capabilities", err)
	}
	switch {
	case !caps.Write:
		return false, s.startError(ctx, c, "capabilities", sink.Permanentf("plugin does not accept writes"))
	case s.cfg.Query && !caps.Query:
		return false, s.startError(ctx, c, "capabilities", sink.Permanentf("sink is configured to answer queries but its plugin cannot"))
	}
	s.setUp(c, caps)
	s.log.Info("sink plugin started", "query", caps.Query)
	return s.deliver(ctx, c)
}

// startError classifies a failed Configure or Capabilities call.
func (s *Supervisor) startError(ctx context.Context, c *sink.Client, op string, err error) error {
	err = fmt.Errorf("%s: %w", op, err)
	switch {
	case ctx.Err() != nil:
		return err
	case sink.IsPermanent(err):
		s.setFailed(opStart, err.Error())
		s.log.Error("sink refused its configuration; retrying later", "error", err, "in", s.cfg.MaxBackoff)
		return &stopError{kind: KindPermanent, permanent: true, err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return stopWith(KindTimeout, err)
	case s.pluginDead(ctx, c):
		return stopWith(KindCrash, err)
	default:
		return stopWith(KindRetryable, err)
	}
}

// stop ends a plugin run: Close (bounded by StopTimeout), then Kill; or, when not graceful,
// KillNow.
func (s *Supervisor) stop(c *sink.Client, graceful bool) {
	if !graceful {
		c.KillNow()
		return
	}
	if !c.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.StopTimeout, s.cfg.CallTimeout))
		if err := c.Close(ctx); err != nil {
			s.log.Debug("closing sink plugin", "error", err)
		}
		cancel()
	}
	c.Kill()
}

// causeOf returns why dctx ended: the *stopError a health check cancelled it with, or the
// parent's error.
func causeOf(dctx context.Context) error {
	cause := context.Cause(dctx)
	var se *stopError
	if errors.As(cause, &se) {
		return se
	}
	return cause
}

// deliver runs the delivery loop on a started plugin. It returns when ctx is done or when the
// plugin must be restarted (a *stopError saying why).
func (s *Supervisor) deliver(ctx context.Context, c *sink.Client) (progressed bool, _ error) {
	dctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(dctx, c, cancel)
	}()
	if s.caps.Checkpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.forwardCheckpoints(dctx, c)
		}()
	}

	retry := newBackoff(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	cursor, err := s.resync(dctx, c, retry)
	if err != nil {
		return false, err
	}
	for {
		if err := s.waitOrHeartbeat(dctx, c, cursor); err != nil {
			if dctx.Err() != nil {
				return progressed, causeOf(dctx)
			}
			s.log.Error("waiting for journal events", "after", cursor, "error", err)
			if !sleep(dctx, retry.next()) {
				return progressed, causeOf(dctx)
			}
			continue
		}
		s.fill(dctx, cursor)
		events, err := s.src.Read(dctx, cursor+1, s.cfg.BatchSize, s.cfg.BatchBytes)
		if last := s.src.Last(); err == nil && len(events) == 0 && last > cursor {
			// Nothing retained after the cursor although the chain is further on: the journal
			// continued after a rebase (those events live in other sinks) or compacted them.
			// They cannot be delivered from here; go on after them rather than loop.
			s.log.Error("the journal no longer holds events this sink has not acknowledged; continuing after them",
				"from", cursor+1, "to", last)
			cursor = last
			s.ack(ctx, cursor, 0)
			continue
		}
		if err != nil || len(events) == 0 {
			if dctx.Err() != nil {
				return progressed, causeOf(dctx)
			}
			s.log.Error("reading the journal for delivery", "from", cursor+1, "error", err)
			if !sleep(dctx, retry.next()) {
				return progressed, causeOf(dctx)
			}
			continue
		}
		if first := events[0].Sequence; first != cursor+1 {
			s.log.Error("the journal skipped sequences; delivering what it has", "expected", cursor+1, "got", first)
		}
		last := events[len(events)-1].Sequence
		timedOut, err := s.write(ctx, dctx, c, events)
		if err == nil {
			err = s.confirm(dctx, c, &events[len(events)-1])
		}
		if err == nil {
			progressed = true
			retry.reset()
			if s.clearFailed(opWrite) {
				s.log.Info("sink recovered", "sequence", last)
			}
			cursor = last
			s.ack(ctx, cursor, len(events))
			continue
		}
		if dctx.Err() != nil {
			return progressed, causeOf(dctx)
		}
		switch {
		case errors.Is(err, sink.ErrConflict):
			// Nothing of the batch is acknowledged; resync re-checks the head until the store
			// agrees with the journal again.
			s.reportConflict(err.Error(), "from", events[0].Sequence, "to", last)
			if !sleep(dctx, s.cfg.MaxBackoff) {
				return progressed, causeOf(dctx)
			}
		case timedOut:
			return progressed, stopWith(KindTimeout, fmt.Errorf("write of sequences %d..%d hung for %s: %w",
				events[0].Sequence, last, s.cfg.WriteTimeout, err))
		case sink.IsPermanent(err):
			s.m.errors[KindPermanent].Inc()
			s.setFailed(opWrite, err.Error())
			s.log.Error("sink refused a batch permanently; retrying later",
				"from", events[0].Sequence, "to", last, "error", err, "in", s.cfg.MaxBackoff)
			if !sleep(dctx, s.cfg.MaxBackoff) {
				return progressed, causeOf(dctx)
			}
		default:
			if s.pluginDead(dctx, c) {
				return progressed, stopWith(KindCrash, fmt.Errorf("plugin died during write: %w", err))
			}
			s.m.errors[KindRetryable].Inc()
			wait := retry.next()
			s.log.Warn("sink write failed; retrying", "from", events[0].Sequence, "to", last, "error", err, "in", wait)
			if !sleep(dctx, wait) {
				return progressed, causeOf(dctx)
			}
		}
		// Whatever the failed call stored is dropped from the retry.
		if cursor, err = s.resync(dctx, c, retry); err != nil {
			return progressed, err
		}
	}
}

// pluginDead reports whether the plugin process is gone or no longer answers.
func (s *Supervisor) pluginDead(ctx context.Context, c *sink.Client) bool {
	if c.Exited() {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	return c.Ping(pctx) != nil && ctx.Err() == nil
}

// watch health-checks the plugin every PingInterval and cancels delivery when it is gone.
func (s *Supervisor) watch(ctx context.Context, c *sink.Client, cancel context.CancelCauseFunc) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.Exited() {
			cancel(stopWith(KindCrash, errors.New("plugin process exited")))
			return
		}
		pctx, pcancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		err := c.Ping(pctx)
		pcancel()
		if err != nil && ctx.Err() == nil {
			kind := KindCrash
			if errors.Is(err, context.DeadlineExceeded) {
				kind = KindTimeout
			}
			cancel(stopWith(kind, fmt.Errorf("health check: %w", err)))
			return
		}
	}
}

// write sends one batch. The call may outlive dctx by up to StopTimeout when Run's context
// ends, so that a write in flight at shutdown completes and is acknowledged; a failed health
// check cancels it at once.
func (s *Supervisor) write(ctx, dctx context.Context, c *sink.Client, events []chain.Event) (timedOut bool, err error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(dctx), s.cfg.WriteTimeout)
	defer cancel()
	stopAfter := context.AfterFunc(dctx, func() {
		if ctx.Err() == nil {
			cancel()
			return
		}
		t := time.AfterFunc(s.cfg.StopTimeout, cancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	defer stopAfter()
	start := time.Now()
	if err := c.Write(wctx, events); err != nil {
		return sink.DeadlinePassed(wctx) && dctx.Err() == nil, err
	}
	s.m.writeDur.Observe(time.Since(start).Seconds())
	s.m.batch.Observe(float64(len(events)))
	s.m.written.Add(float64(len(events)))
	return false, nil
}

// ack records that the sink stored everything up to seq.
func (s *Supervisor) ack(ctx context.Context, seq uint64, n int) {
	s.acked.Store(seq)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.CallTimeout)
	defer cancel()
	if err := s.src.Ack(actx, s.cfg.Name, seq); err != nil {
		// The next ack covers this one; after a restart Head tells what the sink holds.
		s.log.Error("recording the sink's delivery cursor", "sequence", seq, "error", err)
	}
	s.observe()
	s.log.Debug("batch delivered", "events", n, "up_to", seq)
}

// resync asks the sink for its head and returns the sequence delivery continues after:
// max(journal cursor, head). Whatever the sink already stored is acknowledged and never sent
// again. Retryable failures are retried here with backoff.
func (s *Supervisor) resync(dctx context.Context, c *sink.Client, retry *backoff) (uint64, error) {
	chainID := s.src.ChainID()
	for {
		cursor, err := s.src.Cursor(s.cfg.Name)
		if err == nil {
			var h sink.Head
			hctx, cancel := context.WithTimeout(dctx, s.cfg.CallTimeout)
			h, err = c.Head(hctx, chainID)
			cancel()
			if err == nil {
				err = s.checkHead(dctx, h)
			}
			if err == nil {
				if s.clearFailed(opHead) {
					s.log.Info("sink reports its head again")
				}
				if s.clearConflict() {
					s.log.Warn("sink no longer conflicts with the journal; delivery resumes", "head", h.Sequence, "cursor", cursor)
				}
				return s.adoptHead(dctx, cursor, h), nil
			}
			err = fmt.Errorf("head of chain %s: %w", chainID, err)
		} else {
			err = fmt.Errorf("reading the delivery cursor: %w", err)
		}
		if dctx.Err() != nil {
			return 0, causeOf(dctx)
		}
		wait := retry.next()
		switch {
		case errors.Is(err, sink.ErrConflict):
			s.reportConflict(err.Error())
			wait = s.cfg.MaxBackoff
		case errors.Is(err, context.DeadlineExceeded):
			return 0, stopWith(KindTimeout, err)
		case sink.IsPermanent(err):
			s.m.errors[KindPermanent].Inc()
			s.setFailed(opHead, err.Error())
			s.log.Error("sink cannot report its head; retrying later", "error", err, "in", s.cfg.MaxBackoff)
			wait = s.cfg.MaxBackoff
		default:
			if s.pluginDead(dctx, c) {
				return 0, stopWith(KindCrash, err)
			}
			s.m.errors[KindRetryable].Inc()
			s.log.Warn("asking the sink for its head failed; retrying", "error", err, "in", wait)
		}
		if !sleep(dctx, wait) {
			return 0, causeOf(dctx)
		}
	}
}

// adoptHead returns the sequence delivery continues after, given a head checkHead accepted:
// max(cursor, head). Events the sink already stores past the cursor are acknowledged.
func (s *Supervisor) adoptHead(ctx context.Context, cursor uint64, h sink.Head) uint64 {
	switch {
	case h.Found && h.Sequence > cursor:
		s.log.Info("sink already stores events past the delivery cursor; skipping them",
			"cursor", cursor, "head", h.Sequence)
		cursor = h.Sequence
		s.ack(ctx, cursor, 0)
	case cursor > 0 && (!h.Found || h.Sequence < cursor):
		s.log.Warn("sink reports fewer events than it acknowledged; acknowledged events are not resent",
			"cursor", cursor, "head", h.Sequence, "found", h.Found)
	}
	s.acked.Store(cursor)
	s.observe()
	return cursor
}

// checkHead reports a conflict (an error wrapping sink.ErrConflict) when the sink's head
// disagrees with the journal: a head beyond the journal's last sequence (events this sidecar
// never wrote, e.g. rows inserted by someone else), a head without a hash, or a head whose hash
// differs from the journal's event at that sequence (a fork or a rewritten event). Skipping to
// such a head would acknowledge genuine events the sink does not hold.
func (s *Supervisor) checkHead(ctx context.Context, h sink.Head) error {
	if !h.Found {
		return nil
	}
	if h.Hash == "" {
		return sink.Conflictf("the sink reports head sequence %d without its hash", h.Sequence)
	}
	if last := s.src.Last(); h.Sequence > last {
		return sink.Conflictf("the sink's head is sequence %d (hash %s), beyond the journal's last sequence %d: the store holds events this sidecar did not write",
			h.Sequence, h.Hash, last)
	}
	want, ok := s.journalHash(ctx, h.Sequence)
	switch {
	case ok && want != h.Hash:
		s.forkedHead = h
		return sink.Conflictf("the sink holds sequence %d with hash %s, the journal has %s: a forked or rewritten chain",
			h.Sequence, h.Hash, want)
	case !ok && s.forkedHead == h:
		return sink.Conflictf("the sink still holds sequence %d with hash %s, which disagreed with the journal when it was found (the journal no longer holds that sequence): a forked or rewritten chain",
			h.Sequence, h.Hash)
	}
	s.forkedHead = sink.Head{}
	return nil
}

// confirm asks the sink, after a Write it acknowledged, for its head: it must be the batch's last
// event. A sink that reports less did not store what it acknowledged (a write that skipped
// events as "already stored"); one that reports more or another hash holds events the journal
// does not have. Both are conflicts, and nothing of the batch is acknowledged.
func (s *Supervisor) confirm(ctx context.Context, c *sink.Client, last *chain.Event) error {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	h, err := c.Head(hctx, last.ChainID)
	cancel()
	if err != nil {
		return fmt.Errorf("head after writing up to sequence %d: %w", last.Sequence, err)
	}
	if !h.Found || h.Sequence != last.Sequence || h.Hash != last.Hash {
		return sink.Conflictf("after acknowledging a write up to sequence %d (hash %s) the sink reports head %d (hash %q, found %v): it did not store what it acknowledged, or holds events this sidecar did not write",
			last.Sequence, last.Hash, h.Sequence, h.Hash, h.Found)
	}
	return nil
}

// reportConflict marks the sink conflicting and logs it (at error level when it is new).
func (s *Supervisor) reportConflict(reason string, attrs ...any) {
	attrs = append(attrs, "conflict", reason, "recheck_in", s.cfg.MaxBackoff)
	if s.setConflict(reason) {
		s.log.Error("sink store conflicts with the journal: delivery to it stops and the journal keeps its events until the store is repaired (see OPERATIONS: sink conflicts)", attrs...)
	} else {
		s.log.Warn("sink store still conflicts with the journal", attrs...)
	}
}

// journalHash returns the journal's hash of the event at seq, when the journal still holds it
// (or it is the journal's head).
func (s *Supervisor) journalHash(ctx context.Context, seq uint64) (string, bool) {
	if hs, ok := s.src.(interface{ Head() (uint64, string) }); ok {
		if last, hash := hs.Head(); last == seq && hash != "" {
			return hash, true
		}
	}
	evs, err := s.src.Read(ctx, seq, 1, 0)
	if err != nil || len(evs) == 0 || evs[0].Sequence != seq {
		return "", false
	}
	return evs[0].Hash, true
}

// maxPendingCheckpoints bounds the checkpoints kept for a sink that cannot take them (the
// oldest are dropped: the newest checkpoint proves the most).
const maxPendingCheckpoints = 1024

// Checkpoint hands a signed checkpoint to the sink: plugins with the checkpoint capability keep
// or forward it (a witness beside the events). Delivery is asynchronous and retried while the
// plugin runs; the checkpoint log stays the reference.
func (s *Supervisor) Checkpoint(c sink.Checkpoint) {
	s.mu.Lock()
	s.cpPending = append(s.cpPending, c)
	if n := len(s.cpPending); n > maxPendingCheckpoints {
		s.cpPending = append(s.cpPending[:0], s.cpPending[n-maxPendingCheckpoints:]...)
	}
	s.mu.Unlock()
	select {
	case s.cpNotify <- struct{}{}:
	default:
	}
}

// CheckpointsPending reports whether the running plugin keeps checkpoints and some have not
// been handed to it yet (shutdown waits for them like for events).
func (s *Supervisor) CheckpointsPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client != nil && s.caps.Checkpoints && s.conflict == "" && len(s.cpPending) > 0
}

// forwardCheckpoints sends pending checkpoints to a plugin that keeps them, when one arrives and
// every PingInterval while some are left.
func (s *Supervisor) forwardCheckpoints(ctx context.Context, c *sink.Client) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		s.mu.Lock()
		batch := append([]sink.Checkpoint(nil), s.cpPending...)
		s.mu.Unlock()
		if len(batch) > 0 {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			err := c.WriteCheckpoints(cctx, batch)
			cancel()
			if err == nil {
				s.mu.Lock()
				s.cpPending = s.cpPending[min(len(batch), len(s.cpPending)):]
				s.mu.Unlock()
				s.log.Debug("signed checkpoints handed to the sink", "count", len(batch), "sequence", batch[len(batch)-1].Sequence)
			} else if ctx.Err() == nil {
				s.log.Warn("handing signed checkpoints to the sink failed; retrying", "error", err, "pending", len(batch))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.cpNotify:
		case <-t.C:
		}
	}
}

// fill waits up to BatchInterval for a full batch.
func (s *Supervisor) fill(ctx context.Context, cursor uint64) {
	if s.cfg.BatchInterval <= 0 || s.src.Last()-cursor >= uint64(s.cfg.BatchSize) {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.BatchInterval)
	defer cancel()
	for {
		last := s.src.Last()
		if last-cursor >= uint64(s.cfg.BatchSize) || s.src.Wait(fctx, last) != nil {
			return
		}
	}
}

// sleep waits d or until ctx is done; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is exponential backoff with jitter: the n-th wait is uniformly drawn from
// [d/2, d] where d = min(max, min*2^n).
type backoff struct {
	min, max time.Duration
	n        int
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

func (b *backoff) reset() { b.n = 0 }

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	b.n++
	half := d / 2
	return half + rand.N(d-half+1)
}
