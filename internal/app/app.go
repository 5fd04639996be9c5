// Package app wires the sidecar together from its configuration: journal, sink supervisors,
// proxy, audit API, Audit Trail page, execution watcher, admin listener, and their lifecycle.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/plugins"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/proxy/rules"
	"github.com/flowker-audit/flowker-audit/proxy/ui"
	"github.com/flowker-audit/flowker-audit/proxy/watcher"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host"
)

// Options configure an App.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Version and Revision (the commit) are reported by flowker_audit_build_info; an empty
	// Revision falls back to Go's VCS stamp of the binary.
	Version  string
	Revision string
	// PluginCommand returns how to start a bundled plugin. Default: this executable with the
	// arguments "plugin NAME" (so operators see which process is which).
	PluginCommand func(name string) (path string, args []string, err error)
	// Registry receives every metric; default a fresh registry with Go and process collectors.
	Registry *prometheus.Registry
	// SinkTuning adjusts each sink's supervisor settings (tests shorten backoffs).
	SinkTuning func(*host.SinkConfig)
	// RebaseWait bounds how long a start that must check the journal against the sinks' heads
	// waits for an unreachable sink (default 1 min).
	RebaseWait time.Duration
	// RetentionTuning adjusts the retention driver and its interval (tests inject a clock).
	RetentionTuning func(r *host.Retention, interval *time.Duration)
}

// App is the running sidecar.
type App struct {
	cfg            *config.Config
	log            *slog.Logger
	reg            *prometheus.Registry
	journal        *journal.Journal
	journalMetrics *journal.Metrics
	supervisors    []*host.Supervisor // one per sink
	sinkConfigs    []host.SinkConfig  // the supervisors' settings, in the same order
	query          *host.Supervisor
	proxy          *proxy.Proxy
	proxyMetrics   *proxy.Metrics
	api            *auditapi.API
	watcher        *watcher.Watcher
	resolver       *identity.Resolver
	main           *http.Server
	admin          *http.Server
	recovery       *journal.Recovery
	adoptedChain   string             // the chain recognised from the checkpoint log after a journal loss ("" otherwise)
	checkpoints    *checkpoint.Writer // nil when checkpoints are off
	retTuning      func(*host.Retention, *time.Duration)
	upstream       *url.URL
	transport      *http.Transport
	started        time.Time
	unresolved     []journal.Intent // intents the previous run left, recovered by Run

	mu        sync.Mutex
	draining  bool
	lastDrain atomic.Pointer[DrainReport]

	closeOnce sync.Once
	closeErr  error
}

// New builds the sidecar: it opens the journal (recovering its tail) and prepares every
// component. Nothing listens or runs until Run. An App that is never Run must be closed (Close).
func New(ctx context.Context, o Options) (*App, error) {
	o = o.withDefaults()
	a := &App{cfg: o.Config, log: o.Logger, reg: o.Registry, started: time.Now(), retTuning: o.RetentionTuning}
	buildInfo(o.Registry, o.Version, o.Revision)
	keys, err := a.openDataDir()
	if err != nil {
		return nil, err
	}
	if err := a.openJournal(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = a.Close()
		}
	}()
	if err := a.loadIntents(); err != nil {
		return nil, err
	}
	if a.cfg.Chain.CheckpointInterval > 0 {
		if a.checkpoints, err = openCheckpoints(a.cfg, a.journal, o.Registry, o.Logger); err != nil {
			return nil, err
		}
	}
	if err := a.buildSinks(o); err != nil {
		return nil, err
	}
	a.forwardCheckpoints()
	if err := a.checkAgainstSinks(ctx, o.RebaseWait); err != nil {
		return nil, err
	}
	if a.upstream, err = url.Parse(a.cfg.Upstream.URL); err != nil {
		return nil, fmt.Errorf("upstream.url: %w", err)
	}
	a.transport = proxy.NewTransport(a.cfg.Upstream)
	if err := a.buildAuditAPI(keys.cursor, keys.fingerprint); err != nil {
		return nil, err
	}
	if err := a.buildProxy(ctx, keys); err != nil {
		return nil, err
	}
	a.buildServers()
	ok = true
	return a, nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if o.PluginCommand == nil {
		o.PluginCommand = selfPlugin
	}
	if o.RebaseWait <= 0 {
		o.RebaseWait = time.Minute
	}
	return o
}

// Close releases what New opened (the journal and the checkpoint log). Run closes them itself;
// Close is for an App that is not run, and is safe to call more than once.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.checkpoints != nil {
			if err := a.checkpoints.Log.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the checkpoint log: %w", err))
			}
		}
		if a.journal != nil {
			if err := a.journal.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the journal: %w", err))
			}
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// dataKeys are the HMAC keys of a deployment: configured, or generated into data_dir.
type dataKeys struct {
	fingerprint []byte // API-key fingerprints (identity.fingerprint_key)
	cursor      []byte // pagination cursors (auth.cursor_key)
	digest      []byte // body digests in events (capture.digest_key)
}

// openDataDir creates data_dir and returns the deployment's keys (configured, or persisted
// there).
func (a *App) openDataDir() (dataKeys, error) {
	var k dataKeys
	if err := os.MkdirAll(a.cfg.DataDir, 0o750); err != nil {
		return k, fmt.Errorf("creating data_dir %s: %w", a.cfg.DataDir, err)
	}
	var err error
	if k.fingerprint, err = secret(a.cfg.Identity.FingerprintKey, filepath.Join(a.cfg.DataDir, "fingerprint.key")); err != nil {
		return k, err
	}
	if k.cursor, err = secret(a.cfg.Auth.CursorKey, filepath.Join(a.cfg.DataDir, "cursor.key")); err != nil {
		return k, err
	}
	if k.digest, err = secret(a.cfg.Capture.DigestKey, filepath.Join(a.cfg.DataDir, "digest.key")); err != nil {
		return k, err
	}
	return k, nil
}

// openJournal opens the journal and recovers its tail.
func (a *App) openJournal() error {
	cfg := a.cfg
	a.journalMetrics = journal.NewMetrics(a.reg)
	chainID := cfg.Chain.ID
	if chainID == "" {
		// A journal lost without chain.id configured must not silently start a new chain: the
		// checkpoint log names the chain this key signed last (recover.go).
		if chainID = a.chainFromCheckpoints(); chainID != "" {
			a.adoptedChain = chainID
		}
	}
	j, rec, err := journal.Open(journal.Options{
		Path: filepath.Join(cfg.DataDir, "journal.db"), ChainID: chainID, MaxBytes: int64(cfg.Journal.MaxBytes),
		NoSync: !cfg.Journal.Fsync, MaxBatch: cfg.Journal.GroupCommitMax, Logger: a.log.With("component", "journal"), Metrics: a.journalMetrics,
	})
	if err != nil {
		return err
	}
	a.journal, a.recovery = j, rec
	a.log.Info("journal open", "chain_id", rec.ChainID, "last_sequence", rec.Last, "retained", rec.Retained,
		"fresh", rec.Fresh, "tail_checked", rec.Checked, "records_cut", rec.CutCount)
	if !cfg.Journal.Fsync {
		a.log.Warn("journal.fsync is off: events acknowledged just before a crash can be lost")
	}
	return nil
}

// buildSinks prepares one supervisor per configured sink (none is started).
func (a *App) buildSinks(o Options) error {
	sinkMetrics := host.NewMetrics(a.reg)
	for _, s := range a.cfg.Sinks {
		config.SinkDefaults(&s)
		raw, err := json.Marshal(s.Config)
		if err != nil {
			return fmt.Errorf("sink %s: config: %w", s.Name, err)
		}
		launch, err := LaunchOptions(s, o.PluginCommand)
		if err != nil {
			return err
		}
		sc := host.SinkConfig{Name: s.Name, Plugin: s.Plugin, Launch: launch, Config: raw, Query: s.Query,
			BatchSize: s.BatchSize, BatchBytes: int(s.BatchBytes), BatchInterval: s.BatchInterval.D(), WriteTimeout: s.WriteTimeout.D(),
			Retention: s.Retention.D()}
		if o.SinkTuning != nil {
			o.SinkTuning(&sc)
		}
		a.sinkConfigs = append(a.sinkConfigs, sc)
		sup := host.NewSupervisor(sc, a.journal, sinkMetrics, a.log.With("component", "sink"))
		a.supervisors = append(a.supervisors, sup)
		if s.Query {
			a.query = sup
		}
	}
	return nil
}

// checkAgainstSinks makes sure the chain never reuses a sequence number a sink already holds,
// and reports a chain that ends before its newest signed checkpoint.
func (a *App) checkAgainstSinks(ctx context.Context, wait time.Duration) error {
	// A journal that lost its tail (or a configured chain whose journal is new) must not reuse
	// sequence numbers a sink already holds: continue after the highest head the sinks report.
	if a.recovery.CutCount > 0 || (a.recovery.Fresh && (a.cfg.Chain.ID != "" || a.adoptedChain != "")) {
		if err := a.rebaseFromSinks(ctx, a.sinkConfigs, wait); err != nil {
			return err
		}
	}
	if a.checkpoints != nil {
		if last, ok := a.checkpoints.Log.Last(a.journal.ChainID()); ok && last.Sequence > a.journal.Last() {
			// Neither the journal nor any sink reaches a head this sidecar signed: events that
			// were acknowledged to clients are gone.
			lost := last.Sequence - a.journal.Last()
			a.journalMetrics.EventsLost.WithLabelValues("journal_lost").Add(float64(lost))
			a.log.Error("the chain ends before its newest signed checkpoint: acknowledged events are missing (counted in events_lost_total{reason=\"journal_lost\"}; at least this many)",
				"last_sequence", a.journal.Last(), "checkpoint_sequence", last.Sequence, "checkpoint_time", last.Time, "lost_at_least", lost)
		}
	}
	return nil
}

// buildAuditAPI prepares the audit API with its authentication: static keys and/or delegation
// to Flowker; never open.
func (a *App) buildAuditAPI(cursorKey, fingerprintKey []byte) error {
	cfg := a.cfg
	var auths []auditapi.Authenticator
	if len(cfg.Auth.APIKeys) > 0 {
		sk, err := auditapi.NewStaticKeys(cfg.Auth.APIKeys)
		if err != nil {
			return fmt.Errorf("auth.api_keys: %w", err)
		}
		auths = append(auths, sk)
	}
	if cfg.Auth.Delegate {
		d, err := auditapi.NewDelegate(auditapi.DelegateOptions{Upstream: a.upstream, TTL: cfg.Auth.DelegateCacheTTL.D(),
			Logger: a.log.With("component", "audit-auth")})
		if err != nil {
			return err
		}
		auths = append(auths, d)
	}
	var auth auditapi.Authenticator = auditapi.NoneConfigured{}
	switch len(auths) {
	case 0:
		a.log.Warn("the audit API and the Audit Trail page answer 401 to everyone: set auth.api_keys (FLOWKER_AUDIT_AUTH_API_KEYS) or auth.delegate")
	case 1:
		auth = auths[0]
	default:
		auth = auditapi.AnyOf(auths...)
	}
	names := map[string]string{}
	for k, v := range cfg.Identity.APIKeyNames {
		names[k] = v
	}
	evidence, err := a.checkpointEvidence()
	if err != nil {
		return err
	}
	a.api, err = auditapi.New(auditapi.Options{
		Querier: a.querier, Auth: auth, CursorKey: cursorKey, Registerer: a.reg,
		Logger: a.log.With("component", "audit-api"), ActorNames: names, CheckpointLog: checkpointLogPath(cfg),
		Caller:      auditapi.FingerprintCaller(fingerprintKey),
		Checkpoints: evidence,
	})
	return err
}

// buildProxy prepares the identity resolver, the rules, the execution watcher and the proxy
// with its local routes (audit API, Audit Trail page).
func (a *App) buildProxy(ctx context.Context, keys dataKeys) error {
	cfg := a.cfg
	var err error
	a.resolver, err = identity.New(ctx, identity.Options{
		FingerprintKey: keys.fingerprint, Names: cfg.Identity.APIKeyNames, TrustedProxies: cfg.TrustedProxies,
		TrustedHeader: cfg.Identity.TrustedHeader, Logger: a.log.With("component", "identity"),
		JWT: identity.JWTOptions{JWKSURL: cfg.Identity.JWT.JWKSURL, PublicKeyFile: cfg.Identity.JWT.PublicKeyFile,
			HMACSecret: cfg.Identity.JWT.HMACSecret, Issuer: cfg.Identity.JWT.Issuer, Audience: cfg.Identity.JWT.Audience,
			Refresh: cfg.Identity.JWT.JWKSRefresh.D()},
	})
	if err != nil {
		return err
	}
	table, err := rules.New(cfg.Rules)
	if err != nil {
		return err
	}
	redactor, err := capture.NewRedactor(cfg.Capture.RedactKeys, cfg.Capture.RedactPaths, cfg.Capture.KeepKeys...)
	if err != nil {
		return err
	}
	page, err := ui.New(ui.Options{AuthMode: a.api.AuthMode()})
	if err != nil {
		return err
	}
	a.proxyMetrics = proxy.NewMetrics(a.reg)
	var observer proxy.Observer
	if cfg.Watcher.Enabled {
		a.watcher = watcher.New(watcher.Options{
			Upstream: a.upstream, Client: &http.Client{Transport: a.transport, Timeout: 15 * time.Second},
			APIKey: cfg.Watcher.APIKey, Authorization: cfg.Watcher.Authorization, Credentials: watcherCredentials(cfg.Watcher),
			Interval: cfg.Watcher.Interval.D(), MaxInterval: cfg.Watcher.MaxInterval.D(), GiveUpAfter: cfg.Watcher.GiveUpAfter.D(),
			MaxInFlight: cfg.Watcher.MaxInFlight, Journal: a.journal, Registerer: a.reg, Logger: a.log.With("component", "watcher"),
			OnEvent: func(ev chain.Event) { a.proxyMetrics.Events.WithLabelValues(ev.EventType, ev.Result).Inc() },
		})
		observer = a.watcher
	}
	a.proxy, err = proxy.New(proxy.Options{
		Upstream: a.upstream, Transport: a.transport, Rules: table, Identity: a.resolver, Redactor: redactor,
		MaxBodyBytes: int(cfg.Capture.MaxBodyBytes), MaxHoldBytes: int(cfg.Capture.MaxHoldBytes), MaxHoldTotal: int64(cfg.Capture.MaxHoldTotal), CaptureBodies: cfg.Capture.Bodies,
		MaxHoldAnonymous: int64(cfg.Capture.MaxHoldAnonymous), DigestKey: keys.digest,
		BodyIdleTimeout: cfg.Listen.BodyIdleTimeout.D(), BodyReadTimeout: cfg.Listen.BodyReadTimeout.D(),
		FailMode: cfg.Journal.FailMode, Journal: a.journal, Observer: observer, Metrics: a.proxyMetrics, Lost: a.journalMetrics.EventsLost,
		Logger: a.log.With("component", "proxy"),
		Local: []proxy.Local{
			{Name: "audit_api", Match: a.api.Match, Handler: a.api},
			{Name: "audit_trail_page", Match: page.Match, Handler: page},
		},
	})
	return err
}

// buildServers prepares the main (proxy) and admin HTTP servers.
func (a *App) buildServers() {
	cfg := a.cfg
	a.main = &http.Server{Addr: cfg.Listen.Addr, Handler: a.proxy, ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout.D(),
		IdleTimeout: cfg.Listen.IdleTimeout.D(), ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn), MaxHeaderBytes: 1 << 20}
	if cfg.Admin.Addr != "" {
		a.admin = &http.Server{Addr: cfg.Admin.Addr, Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	}
}

// rebaseFromSinks asks every sink for its head of this chain and, when one is ahead of the
// journal, continues the chain after it. Every sink must answer (retried for up to
// opts.RebaseWait): without a sink's head the sidecar cannot know which sequence numbers that sink
// already holds, so starting would risk reusing them, and the start fails with the reason instead.
// Cursors left above the new head (a sink acknowledged events that the journal then lost) are set
// back to what the sink says it holds.
func (a *App) rebaseFromSinks(ctx context.Context, sinks []host.SinkConfig, wait time.Duration) error {
	chainID := a.journal.ChainID()
	var best sink.Head
	heads := map[string]sink.Head{}
	for _, sc := range sinks {
		h, err := a.sinkHeadRetrying(ctx, sc, chainID, wait)
		if err != nil {
			return fmt.Errorf("the journal lost its tail (or is new for chain %q) and sink %q could not tell its head within %s: %w; "+
				"starting now could reuse sequence numbers that sink holds: bring it back, remove it from sinks, or use a new chain.id",
				chainID, sc.Name, wait, err)
		}
		heads[sc.Name] = h
		if h.Found && h.Sequence > best.Sequence {
			best = h
		}
	}
	if best.Sequence > a.journal.Last() {
		a.log.Warn("the journal is behind the sinks (its file was replaced or its tail was damaged): continuing the chain after the sinks' head",
			"journal_last", a.journal.Last(), "sink_head", best.Sequence)
		if err := a.journal.Rebase(ctx, best.Sequence, best.Hash, time.Now()); err != nil {
			return fmt.Errorf("continuing the chain after sequence %d: %w", best.Sequence, err)
		}
	}
	cursors, err := a.journal.Cursors()
	if err != nil {
		return err
	}
	last := a.journal.Last()
	for name, c := range cursors {
		if c <= last {
			continue
		}
		to := min(heads[name].Sequence, last)
		a.log.Error("a sink's delivery cursor was beyond the chain head: acknowledged events are missing from the journal and the sinks",
			"sink", name, "cursor", c, "sink_head", heads[name].Sequence, "chain_head", last, "cursor_now", to)
		if err := a.journal.Ack(ctx, name, to); err != nil {
			return fmt.Errorf("resetting the cursor of sink %q: %w", name, err)
		}
	}
	return nil
}

// sinkHeadRetrying asks sc for its head, retrying with backoff for up to wait.
func (a *App) sinkHeadRetrying(ctx context.Context, sc host.SinkConfig, chainID string, wait time.Duration) (sink.Head, error) {
	deadline := time.Now().Add(wait)
	backoff := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, min(30*time.Second, max(time.Until(deadline), time.Second)))
		h, err := sinkHead(cctx, sc, chainID, a.log)
		cancel()
		if err == nil {
			return h, nil
		}
		if time.Now().Add(backoff).After(deadline) || ctx.Err() != nil {
			return sink.Head{}, err
		}
		a.log.Warn("could not read a sink's head to check the journal against it; retrying", "sink", sc.Name, "err", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return sink.Head{}, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func sinkHead(ctx context.Context, sc host.SinkConfig, chainID string, log *slog.Logger) (sink.Head, error) {
	launch := sc.Launch
	if launch.Logger == nil {
		launch.Logger = log.With("sink", sc.Name)
	}
	c, err := sink.Open(ctx, launch)
	if err != nil {
		return sink.Head{}, err
	}
	defer c.Kill()
	if err := c.Configure(ctx, sc.Config); err != nil {
		return sink.Head{}, err
	}
	return c.Head(ctx, chainID)
}

// ErrQuerySinkDown is returned while no query sink is configured or it is down.
var ErrQuerySinkDown = errors.New("query sink unavailable")

func (a *App) querier(context.Context) (sink.Querier, error) {
	if a.query == nil {
		return nil, ErrQuerySinkDown
	}
	return a.query.Querier()
}

// Journal returns the journal (tests, verify).
func (a *App) Journal() *journal.Journal { return a.journal }

// Run starts the listeners, the sink supervisors, the watcher and the compaction loop, and
// blocks until ctx ends; then it stops accepting, finishes in-flight requests, lets the sinks
// catch up, stops the plugins and closes the journal, all within shutdown_timeout.
func (a *App) Run(ctx context.Context, ready func(proxyAddr, adminAddr net.Addr)) error {
	defer a.Close()
	ln, err := net.Listen("tcp", a.cfg.Listen.Addr)
	if err != nil {
		return fmt.Errorf("listen.addr: %w", err)
	}
	var aln net.Listener
	if a.admin != nil {
		if aln, err = net.Listen("tcp", a.cfg.Admin.Addr); err != nil {
			ln.Close()
			return fmt.Errorf("admin.addr: %w", err)
		}
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	sinkCtx, stopSinks := context.WithCancel(context.WithoutCancel(ctx))
	var sinkWG sync.WaitGroup
	for _, s := range a.supervisors {
		sinkWG.Add(1)
		go func(s *host.Supervisor) {
			defer sinkWG.Done()
			if err := s.Run(sinkCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("sink supervisor stopped", "sink", s.Name(), "err", err)
			}
		}(s)
	}
	if a.watcher != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.watcher.Run(bg); err != nil {
				a.log.Error("execution watcher stopped", "err", err)
			}
		}()
	}
	if a.checkpoints != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.checkpoints.Run(bg, a.cfg.Chain.CheckpointInterval.D()) }()
	}
	if r, every := a.retention(); r != nil { // retention.go
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(bg, every) }()
	}
	wg.Add(4)
	go func() { defer wg.Done(); a.recoverIntents(bg) }()
	go func() { defer wg.Done(); a.retryStranded(bg) }()
	go func() { defer wg.Done(); a.compactLoop(bg) }()
	go func() { defer wg.Done(); a.resolver.RefreshLoop(bg) }()

	errc := make(chan error, 2)
	go func() { errc <- serve(a.main, ln) }()
	if a.admin != nil {
		go func() { errc <- serve(a.admin, aln) }()
	}
	a.log.Info("flowker-audit listening", "proxy", ln.Addr().String(), "admin", addrString(aln), "upstream", a.cfg.Upstream.URL,
		"chain_id", a.journal.ChainID())
	if ready != nil {
		var adminAddr net.Addr
		if aln != nil {
			adminAddr = aln.Addr()
		}
		ready(ln.Addr(), adminAddr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	a.mu.Lock()
	a.draining = true // /readyz answers 503 from now on, so load balancers stop sending
	a.mu.Unlock()
	a.log.Info("shutting down: no new connections; finishing in-flight requests")
	deadline := time.Now().Add(a.cfg.ShutdownTimeout.D())
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := a.main.Shutdown(sctx); err != nil {
		a.log.Warn("in-flight requests did not finish before the shutdown deadline", "err", err)
	}
	stopBG()
	wg.Wait()
	if a.proxy.StrandedCount() > 0 && a.journal.Accepting() == nil {
		// Events that waited for the journal: journal them now rather than at the next start.
		if _, err := a.proxy.RetryStranded(sctx); err != nil {
			a.log.Warn("events still waiting for the journal at shutdown are recovered from their intents at the next start", "err", err)
		}
	}
	if a.checkpoints != nil {
		a.checkpoints.Final() // nothing is appended any more: sign the final head
	}
	// Deliver what the journal holds until a little before the deadline (drain.go); what the
	// sinks do not get stays in the journal and is reported.
	a.drain(deadline.Add(-a.cfg.ShutdownTimeout.D() / 4))
	stopSinks()
	sinkWG.Wait()
	if a.admin != nil {
		_ = a.admin.Shutdown(sctx)
	}
	if err := a.Close(); err != nil {
		a.log.Error("closing", "err", err)
	}
	a.log.Info("stopped", "last_sequence", a.journal.Last())
	return runErr
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// waitDelivered waits until every sink acknowledged the journal's last sequence, or ctx ends.
func (a *App) waitDelivered(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		for _, s := range a.supervisors {
			if s.Lag() > 0 || s.CheckpointsPending() {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// compactLoop removes what every sink acknowledged.
func (a *App) compactLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.Journal.CompactEvery.D())
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if keep := a.cfg.Journal.OnceRetention.D(); keep > 0 && time.Since(pruned) > time.Hour {
			pruned = time.Now()
			if n, err := a.journal.PruneOnce(ctx, pruned.Add(-keep)); err != nil {
				a.log.Warn("pruning idempotency keys failed", "err", err)
			} else if n > 0 {
				a.log.Debug("idempotency keys pruned", "removed", n, "older_than", keep.String())
			}
		}
		upTo := uint64(0)
		for i, s := range a.supervisors {
			c, err := a.journal.Cursor(s.Name())
			if err != nil {
				a.log.Warn("reading a sink cursor", "sink", s.Name(), "err", err)
				upTo = 0
				break
			}
			if i == 0 || c < upTo {
				upTo = c
			}
		}
		if upTo == 0 {
			continue
		}
		if n, err := a.journal.Compact(ctx, upTo); err != nil {
			a.log.Warn("journal compaction failed", "err", err)
		} else if n > 0 {
			a.log.Debug("journal compacted", "removed", n, "up_to", upTo)
		}
	}
}

// Readiness is the /readyz body.
type Readiness struct {
	Status string                 `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

// CheckResult is one readiness check.
type CheckResult struct {
	Status string `json:"status"` // up, down
	Error  string `json:"error,omitempty"`
	Query  bool   `json:"query,omitempty"`
	Lag    uint64 `json:"lagEvents,omitempty"`
}

// Ready reports readiness: the journal accepts events and the query sink is up. Other sinks
// are listed but do not make the sidecar unready (the journal buffers for them).
func (a *App) Ready() (bool, Readiness) {
	r := Readiness{Status: "ready", Checks: map[string]CheckResult{}}
	ready := true
	a.mu.Lock()
	draining := a.draining
	a.mu.Unlock()
	if draining {
		r.Checks["shutdown"] = CheckResult{Status: "down", Error: "shutting down"}
		ready = false
	}
	if err := a.journal.Accepting(); err != nil {
		r.Checks["journal"] = CheckResult{Status: "down", Error: err.Error()}
		ready = false
	} else {
		r.Checks["journal"] = CheckResult{Status: "up"}
	}
	for _, s := range a.supervisors {
		ok, why := s.Ready()
		c := CheckResult{Status: "up", Query: s == a.query, Lag: s.Lag()}
		if !ok {
			c.Status, c.Error = "down", why
			if s == a.query {
				ready = false
			}
		}
		r.Checks["sink:"+s.Name()] = c
	}
	if !ready {
		r.Status = "not ready"
	}
	return ready, r
}

func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, body := a.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, body)
	})
	if a.cfg.Admin.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// openCheckpoints loads (or creates) the checkpoint signing key and opens the checkpoint log.
func openCheckpoints(cfg *config.Config, j *journal.Journal, reg prometheus.Registerer, log *slog.Logger) (*checkpoint.Writer, error) {
	keyPath, logPath := cfg.CheckpointPaths()
	key, created, err := checkpoint.LoadOrCreateKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("chain.checkpoint_key: %w", err)
	}
	if mode, loose := checkpoint.LooseKeyMode(keyPath); loose {
		log.Warn("the checkpoint signing key is readable by others than its owner", "path", keyPath, "mode", mode.String())
	}
	signer := checkpoint.NewSigner(key)
	pub := signer.Public()
	l, info, err := checkpoint.OpenLog(logPath, pub)
	if err != nil {
		return nil, fmt.Errorf("chain.checkpoint_log: %w", err)
	}
	if info.Cut > 0 {
		log.Warn("checkpoint log: cut a torn last line left by a crash", "path", logPath, "bytes", info.Cut)
	}
	if _, ok := l.Last(j.ChainID()); !ok && j.Last() > 0 && !created {
		// The chain has events and the key is not new, yet the log holds no checkpoint of the
		// chain by this key: it was deleted or emptied (or checkpoints were off until now).
		log.Warn("checkpoint log holds no checkpoint of this chain although the chain has events: it was deleted, emptied or replaced (it is recreated); verify against the shipped copy",
			"path", logPath, "chain_id", j.ChainID(), "last_sequence", j.Last(), "log_existed", info.Existed, "checkpoints_in_log", info.Count)
	}
	if info.Foreign > 0 {
		log.Warn("checkpoint log holds checkpoints not signed by this key (an earlier key, or edited lines); verifiers need every key's public half",
			"path", logPath, "count", info.Foreign, "key_id", signer.KeyID(), "key_created", created)
	}
	log.Info("signed checkpoints on", "log", logPath, "key_id", checkpoint.KeyID(pub), "public_key", hex.EncodeToString(pub),
		"key_created", created, "interval", cfg.Chain.CheckpointInterval.D().String())
	return &checkpoint.Writer{ChainID: j.ChainID(), Head: j.Head, Signer: signer, Log: l,
		Metrics: checkpoint.NewMetrics(reg), Logger: log.With("component", "checkpoint")}, nil
}

// secret returns the configured value, or the one persisted in path (created on first use).
func secret(configured, path string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	if b, err := os.ReadFile(path); err == nil {
		k := strings.TrimSpace(string(b))
		if raw, err := hex.DecodeString(k); err == nil && len(raw) == 32 {
			return []byte(k), nil
		}
		return nil, fmt.Errorf("%s is damaged (expected the 64 hexadecimal characters this sidecar wrote there); remove it to generate a new one", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	k := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return []byte(k), nil
}

// LaunchOptions says how to start sink s's plugin: a bundled plugin by re-executing this binary
// (pluginCommand; nil: this executable's `plugin NAME`), any other by its path, with the
// environment variables its config names in *_env keys.
func LaunchOptions(s config.Sink, pluginCommand func(name string) (string, []string, error)) (sink.LaunchOptions, error) {
	launch := sink.LaunchOptions{Name: s.Name, SHA256: s.SHA256, Env: passEnv(s.Config), Path: s.Plugin}
	if !plugins.IsBundled(s.Plugin) {
		return launch, nil
	}
	if pluginCommand == nil {
		pluginCommand = selfPlugin
	}
	path, args, err := pluginCommand(s.Plugin)
	if err != nil {
		return sink.LaunchOptions{}, fmt.Errorf("sink %s: %w", s.Name, err)
	}
	launch.Path, launch.Args = path, args
	return launch, nil
}

// passEnv forwards the environment variables a sink's config names in *_env keys (such as
// ClickHouse's password_env) to its plugin process, which otherwise gets a minimal environment.
func passEnv(cfg map[string]any) []string {
	var out []string
	for k, v := range cfg {
		name, ok := v.(string)
		if !ok || !strings.HasSuffix(k, "_env") || name == "" {
			continue
		}
		if val, ok := os.LookupEnv(name); ok {
			out = append(out, name+"="+val)
		}
	}
	return out
}

func selfPlugin(name string) (string, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("locating the flowker-audit executable to start plugin %s: %w", name, err)
	}
	return exe, []string{"plugin", name}, nil
}

func buildInfo(reg prometheus.Registerer, version, rev string) {
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if version == "" {
		version = "dev"
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowker_audit", Name: "build_info",
		Help: "Build information of the running sidecar (always 1)."}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(version, rev, runtime.Version()).Set(1)
	reg.MustRegister(g)
}

// checkpointLogPath is the checkpoint log the audit API's NDJSON export reads ("" when
// checkpoints are off).
func checkpointLogPath(cfg *config.Config) string {
	if cfg.Chain.CheckpointInterval.D() == 0 {
		return ""
	}
	_, log := cfg.CheckpointPaths()
	return log
}
