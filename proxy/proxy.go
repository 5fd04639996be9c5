// Package proxy is the sidecar's request path: a reverse proxy in front of Flowker that forwards
// every request unchanged and turns each mutating one into an audit event.
//
// For an audited request the proxy checks that the journal can accept an event, reads the request
// body (up to capture.max_hold_bytes) and makes an intent durable in the journal (write-ahead: if
// it cannot, and the route is fail_closed, it answers 503 before Flowker sees anything), forwards
// the request, holds the response (up to capture.max_hold_bytes), infers the event from the rule,
// the request and the response, appends it to the journal (resolving the intent in the same
// transaction) and waits for the fsync, and only then releases the response with the event id in
// X-Audit-Id. Reads and routes that are not
// audited stream straight through with no buffering.
package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/httpx"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/proxy/rules"
)

// Journal is where intents and events go; *journal.Journal implements it.
type Journal interface {
	Append(ctx context.Context, d journal.Draft) (chain.Event, error)
	Accepting() error
	Intend(ctx context.Context, in journal.Intent) error
	Resolve(ctx context.Context, id string) error
	// Complete journals an intended request's event without waiting for it to be durable (see
	// journal.Journal.Complete); on an error the event is appended with Append instead.
	Complete(ctx context.Context, d journal.Draft, then func(chain.Event, error)) error
}

// Observer learns about executions (the execution watcher implements it). Both methods must
// return quickly.
type Observer interface {
	// Started is called after an EXECUTION_STARTED event (and its watch entry) was journaled.
	Started(executionID, workflowID string)
	// Watching reports whether executionID's outcome is still awaited: only then is the body of a
	// GET /v1/executions/{id} response that passes through read for it.
	Watching(executionID string) bool
	// Seen is called with the body of such a response.
	Seen(executionID string, body []byte)
}

// Local is a route the sidecar answers itself (audit API, Audit Trail page).
type Local struct {
	Name    string
	Match   func(*http.Request) bool
	Handler http.Handler
}

// Options configure a Proxy.
type Options struct {
	Upstream     *url.URL
	Transport    http.RoundTripper
	Rules        *rules.Table
	Identity     *identity.Resolver
	Redactor     *capture.Redactor
	MaxBodyBytes int // cap of a rendered body in an event
	MaxHoldBytes int // cap of a response held before its event is durable
	// MaxHoldTotal caps the body bytes held by all audited requests in flight together (default
	// 256 MiB); past it, captures are cut short (the event says truncated) and responses stream.
	// Bytes are counted as they are held, in steps of holdStep, not reserved up front.
	MaxHoldTotal int64
	// MaxHoldAnonymous is the part of MaxHoldTotal set aside for requests that present no
	// credential at all (default 16 MiB, at most half the total): they hold bytes from it alone,
	// so they can never starve requests that do.
	MaxHoldAnonymous int64
	// BodyIdleTimeout and BodyReadTimeout bound the reading of every forwarded request body:
	// no progress for BodyIdleTimeout (default 30 s), or not whole after BodyReadTimeout (default
	// 5 min), and the request is answered 408 (and recorded as a FAILED attempt when audited).
	BodyIdleTimeout, BodyReadTimeout time.Duration
	CaptureBodies                    bool // render bodies (false: sizes and digests only)
	// DigestKey keys the HMAC-SHA-256 digests of bodies (capture.digest_key, the same on every
	// replica). Empty: a random key for this process (digests then match nothing after a restart).
	DigestKey []byte
	FailMode  string
	Journal   Journal
	Observer  Observer
	Local     []Local
	Metrics   *Metrics
	// Lost counts events that could not be journaled (shared with the journal's metrics).
	Lost   *prometheus.CounterVec
	Logger *slog.Logger
	Now    func() time.Time
	// AppendTimeout bounds the wait for the journal (default 30 s).
	AppendTimeout time.Duration
}

// Proxy is the sidecar's main HTTP handler.
type Proxy struct {
	opts      Options
	rp        *httputil.ReverseProxy
	log       *slog.Logger
	m         *Metrics
	redactors map[*rules.Rule]*capture.Redactor
	canon     sync.Pool       // *jsonb.Canonicalizer scratch space, reused across requests
	budget    *capture.Budget // body bytes held by audited requests in flight that carry a credential
	anon      *capture.Budget // ... and by those that carry none (their own small share)
	stranded  stranded        // events waiting for a failed journal (their intents are durable)
}

type ctxKey struct{}

// exchange is the per-request state of an audited (or observed) request.
type exchange struct {
	match    *rules.Match
	rule     *rules.Rule
	route    string
	start    time.Time
	upstream time.Time // response headers received
	mode     string
	eventID  string
	id       identity.Identity
	reqTee   *capture.Tee
	reqHeld  []byte   // the request body's first bytes, read before forwarding
	reqCut   bool     // the hold budget, not the hold limit, cut reqHeld short
	intended bool     // the intent is durable: the event resolves it
	reqCtx   []byte   // the request's rendering in the context, when final before forwarding
	reqMemo  *reqMemo // what was read from the request body, when final before forwarding
	// ctxCommon holds the context members the intent and the event share (ctxCommonN of them),
	// when the intent's description had the whole request body.
	ctxCommon  []byte
	ctxCommonN int
	observe    bool // execution status read: watch the response body
	audited    bool
	failed     bool // ModifyResponse failed to journal (fail_closed)
	upStatus   int
	method     string
	rawPath    string
	query      string
	hdr        http.Header
	// client is the incoming request's context: it ends when the client goes away, while the
	// upstream call of an audited request runs on, detached (see serveAudited).
	client context.Context
	pool   *capture.Budget // where this exchange's held bytes are counted
}

// detachedLimit bounds an audited upstream call that outlives its client.
const detachedLimit = 5 * time.Minute

// New builds the proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Upstream == nil || opts.Journal == nil || opts.Rules == nil || opts.Identity == nil || opts.Redactor == nil {
		return nil, errors.New("proxy: upstream, journal, rules, identity and redactor are required")
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport(config.Default().Upstream)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Lost == nil {
		opts.Lost = journal.NewMetrics(nil).EventsLost
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FailMode == "" {
		opts.FailMode = config.FailClosed
	}
	if opts.MaxHoldBytes <= 0 {
		opts.MaxHoldBytes = 8 << 20
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.MaxHoldTotal <= 0 {
		opts.MaxHoldTotal = 256 << 20
	}
	if opts.AppendTimeout <= 0 {
		opts.AppendTimeout = 30 * time.Second
	}
	if opts.MaxHoldAnonymous <= 0 {
		opts.MaxHoldAnonymous = 16 << 20
	}
	opts.MaxHoldAnonymous = min(opts.MaxHoldAnonymous, opts.MaxHoldTotal/2)
	if opts.BodyIdleTimeout <= 0 {
		opts.BodyIdleTimeout = 30 * time.Second
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = 5 * time.Minute
	}
	if len(opts.DigestKey) == 0 {
		opts.DigestKey = make([]byte, 32)
		if _, err := rand.Read(opts.DigestKey); err != nil {
			return nil, fmt.Errorf("proxy: digest key: %w", err)
		}
	}
	p := &Proxy{opts: opts, log: opts.Logger, m: opts.Metrics, redactors: map[*rules.Rule]*capture.Redactor{},
		budget: capture.NewBudget(opts.MaxHoldTotal - opts.MaxHoldAnonymous), anon: capture.NewBudget(opts.MaxHoldAnonymous)}
	p.budget.OnChange(p.heldChanged)
	p.anon.OnChange(p.heldChanged)
	p.canon.New = func() any { return new(jsonb.Canonicalizer) }
	for _, r := range opts.Rules.Rules() {
		p.redactors[r] = opts.Redactor.With(r.Redact)
	}
	p.redactors[rules.Unclassified] = opts.Redactor
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      &timedTransport{next: opts.Transport, m: opts.Metrics, now: opts.Now},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// NewTransport returns the upstream transport for the given settings.
func NewTransport(u config.Upstream) *http.Transport {
	d := &net.Dialer{Timeout: u.DialTimeout.D(), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never route Flowker traffic through an environment proxy
		DialContext:           d.DialContext,
		MaxIdleConns:          u.MaxIdleConns,
		MaxIdleConnsPerHost:   u.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: u.ResponseHeaderTimeout.D(),
		ExpectContinueTimeout: time.Second,
		// Never ask for gzip on the client's behalf: the Transport would then decompress the
		// response, and the client would not get Flowker's bytes unchanged.
		DisableCompression: true,
	}
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// timedTransport measures the upstream time to response headers.
type timedTransport struct {
	next http.RoundTripper
	m    *Metrics
	now  func() time.Time // the proxy's clock (Options.Now)
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := t.now()
	resp, err := t.next.RoundTrip(r)
	route := "unmatched"
	if x, ok := r.Context().Value(ctxKey{}).(*exchange); ok {
		route = x.route
		x.upstream = t.now()
	} else if rt, ok := r.Context().Value(routeKey{}).(string); ok {
		route = rt
	}
	t.m.UpstreamDuration.WithLabelValues(route).Observe(t.now().Sub(start).Seconds())
	return resp, err
}

type routeKey struct{}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.opts.Upstream)
	// Forwarding headers are rebuilt: kept from the client only when the peer is a trusted proxy.
	trusted := p.opts.Identity.TrustedPeer(pr.In.RemoteAddr)
	if trusted {
		if v := pr.In.Header.Values("X-Forwarded-For"); len(v) > 0 {
			pr.Out.Header["X-Forwarded-For"] = append([]string(nil), v...)
		}
	}
	pr.SetXForwarded()
	if trusted {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "https" || v == "http" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
}

// ServeHTTP routes a request: local routes, then audited, observed or plain forwarding.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.opts.Now()
	p.m.InFlight.Inc()
	defer p.m.InFlight.Dec()
	rec := httpx.NewStatusRecorder(w, p.opts.Now)
	route := "unmatched"
	defer func() {
		method := metricMethod(r.Method)
		p.m.Requests.WithLabelValues(route, method, strconv.Itoa(rec.Code())).Inc()
		p.m.Duration.WithLabelValues(route, method).Observe(rec.HeaderTime(start).Seconds())
	}()
	for _, l := range p.opts.Local {
		if l.Match(r) {
			route = l.Name
			l.Handler.ServeHTTP(rec, r)
			return
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		tb := newTimedBody(rec, r.Body, p.opts.BodyIdleTimeout, p.opts.BodyReadTimeout, p.opts.Now())
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, tb))
		r.Body = tb
	}
	m := p.opts.Rules.Match(r.Method, r.URL.EscapedPath())
	var rule *rules.Rule
	switch {
	case rules.Preflight(r):
		// Flowker's CORS middleware answers it before any route runs: nothing can change.
		route = "cors_preflight"
	case m != nil && m.Rule.Kind == config.KindExecutionStatus && rules.Mutating(r):
		// A status-read rule never exempts a change (a configured rule with a wider method).
		rule, route = rules.Unclassified, rules.Unclassified.Name
		p.m.Unclassified.WithLabelValues(metricMethod(r.Method)).Inc()
	case m != nil && m.Rule.Kind == config.KindExecutionStatus:
		route = m.Rule.Name
		if p.opts.Observer != nil && r.Method == http.MethodGet && p.opts.Observer.Watching(rules.CanonicalID(m.Param("id"))) {
			x := &exchange{match: m, rule: m.Rule, route: route, start: start, observe: true}
			p.rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), ctxKey{}, x)))
			return
		}
	case m != nil && m.Rule.Audit:
		rule, route = m.Rule, m.Rule.Name
	case m != nil:
		route = m.Rule.Name
	case rules.Mutating(r):
		rule, route = rules.Unclassified, rules.Unclassified.Name
		p.m.Unclassified.WithLabelValues(metricMethod(r.Method)).Inc()
	}
	if rule == nil {
		p.rp.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
		return
	}
	p.serveAudited(rec, r, m, rule, start)
}

func (p *Proxy) serveAudited(w http.ResponseWriter, r *http.Request, m *rules.Match, rule *rules.Rule, start time.Time) {
	mode := rule.FailMode
	if mode == "" {
		mode = p.opts.FailMode
	}
	if err := p.opts.Journal.Accepting(); err != nil {
		reason := journalReason(err)
		if mode == config.FailClosed {
			p.m.Refused.WithLabelValues(reason).Inc()
			p.log.Error("audited request refused before reaching Flowker: the journal cannot accept events (fail_closed)",
				"method", r.Method, "route", rule.Name, "err", err)
			writeError(w, http.StatusServiceUnavailable, "FLKAUD-0503", "Service Unavailable",
				"the audit journal cannot record this request, so it was not forwarded; retry later")
			return
		}
		p.log.Warn("journal cannot accept events; forwarding anyway (fail_open), the event will be counted lost if it cannot be written",
			"route", rule.Name, "err", err)
	}
	x := &exchange{match: m, rule: rule, route: rule.Name, start: start, mode: mode, audited: true,
		eventID: newEventID(), id: p.opts.Identity.Resolve(r),
		method: r.Method, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, hdr: r.Header}
	if m == nil {
		x.match = &rules.Match{Rule: rule}
	}
	x.pool = p.budget
	if x.id.Method == "anonymous" {
		x.pool = p.anon
	}
	x.client = r.Context()
	// The request body is read (up to capture.max_hold_bytes) and the intent made durable before
	// Flowker sees anything (write-ahead audit).
	body, release := p.holdRequest(x, r)
	defer release()
	if !p.intend(w, r, x) {
		return
	}
	p.m.Forwarded.Inc()
	// Once Flowker has the whole request it may apply it even if the client goes away, so the
	// upstream call is not cancelled with the client: it runs to its response, which is then
	// journaled with its real status and resource id. (A body cut short by the client still
	// aborts the call: the body read fails.)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), detachedLimit)
	defer cancel()
	out := r.WithContext(context.WithValue(ctx, ctxKey{}, x))
	out.Body = body
	p.rp.ServeHTTP(w, out)
}

func (p *Proxy) heldChanged() { p.m.HeldBytes.Set(float64(p.budget.InUse() + p.anon.InUse())) }

func newEventID() string {
	if u, err := uuid.NewV7(); err == nil {
		return u.String()
	}
	return uuid.NewString()
}

// modifyResponse holds an audited response until its event is durable.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	resp.Header.Del("X-Audit-Id") // ours alone: never one an upstream sent
	x, ok := resp.Request.Context().Value(ctxKey{}).(*exchange)
	if !ok {
		return nil
	}
	if x.observe {
		if resp.StatusCode == http.StatusOK {
			resp.Body = &observeBody{rc: resp.Body, limit: 256 << 10, done: func(b []byte) {
				p.opts.Observer.Seen(rules.CanonicalID(x.match.Param("id")), b)
			}}
		}
		return nil
	}
	holdStart := p.opts.Now()
	x.upStatus = resp.StatusCode
	// The tee only counts and hashes: the held bytes are the capture (one copy, not two). They
	// count against the budget shared by all requests in flight until the response is done. A
	// response Flowker accepted counts against the main share even for a request that carried no
	// credential (Flowker runs without authentication, or the route is open); others against the
	// pool of their request.
	pool := x.pool
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		pool = p.budget
	}
	respTee := capture.NewTee(resp.Body, 0).WithDigestKey(p.opts.DigestKey)
	held, cut, readErr := hold(respTee, p.opts.MaxHoldBytes, pool, resp.ContentLength)
	p.heldChanged()
	if cut {
		p.log.Warn("capture.max_hold_total reached: response captured in part and streamed", "route", x.route,
			"held_bytes", p.budget.InUse()+p.anon.InUse(), "anonymous_pool", pool == p.anon)
	}
	sum := respTee.Summary()
	sum.Captured = held[:min(len(held), p.opts.MaxHoldBytes):min(len(held), p.opts.MaxHoldBytes)]
	sum.Truncated = sum.Bytes > int64(len(sum.Captured)) || cut || (!sum.Complete && readErr == nil)
	if readErr != nil && sum.Err == nil {
		sum.Err = readErr
	}
	d, record := p.infer(x, resp.StatusCode, resp.Header, sum, nil)
	if !record {
		p.resolve(resp.Request.Context(), x)
	} else {
		id, err := p.record(resp.Request.Context(), x, d)
		switch {
		case err == nil:
			resp.Header.Set("X-Audit-Id", id)
		case errors.Is(err, journal.ErrDuplicate):
			// An idempotent replay of an execution already recorded: nothing new happened (the
			// journal resolved the intent).
		case x.mode == config.FailClosed:
			x.failed = true
			pool.Give(len(held)) // the response is dropped
			p.heldChanged()
			return fmt.Errorf("audit record not written: %w", err)
		}
	}
	p.m.HoldDuration.Observe(p.opts.Now().Sub(holdStart).Seconds())
	// Release the response: the held bytes, then whatever was beyond the hold limit.
	rest := io.Reader(bytes.NewReader(nil))
	switch {
	case readErr != nil:
		rest = errReader{readErr}
	case !sum.Complete:
		rest = respTee // beyond the hold limit (or the budget) the body streams on after the event
	}
	resp.Body = &heldBody{Reader: io.MultiReader(bytes.NewReader(held), rest), closer: respTee,
		release: func() { pool.Give(len(held)); p.heldChanged() }}
	return nil
}

// holdStep is how much budget a held body takes at a time: the budget counts the bytes
// actually held (give or take one step), never the most a body could hold.
const holdStep = 32 << 10

// holdPrefix is the start of every response that is held even when the budget is spent (and
// counted, so held_bytes stays true): Flowker writes ids, names and statuses first, so the event
// keeps them even when its capture is cut.
const holdPrefix = 4 << 10

// hold reads r until EOF or max+1 bytes, taking budget in steps. cut says the budget stopped it
// before either. sizeHint is the body's declared length (-1: unknown): the buffer starts at that
// size (at most one step) and otherwise grows by doubling, so a small body costs a small buffer
// rather than a whole step.
func hold(r io.Reader, maxHold int, b *capture.Budget, sizeHint int64) (held []byte, cut bool, err error) {
	limit := maxHold + 1 // one byte more than the hold limit says the body goes on
	initial := holdInitial
	if sizeHint >= 0 {
		initial = int(min(sizeHint+1, int64(holdStep))) // +1: EOF is seen without growing
	}
	held = make([]byte, 0, min(initial, limit))
	for len(held) < limit {
		want := min(holdStep, limit-len(held))
		got := b.Take(want)
		if got == 0 {
			if len(held) >= holdPrefix {
				return held, true, nil
			}
			got = min(want, holdPrefix-len(held))
			b.Force(got)
		}
		var n int
		var rerr error
		held, n, rerr = readUpTo(r, held, got)
		b.Give(got - n)
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF: // as io.ReadFull reported them
			return held, false, nil
		case rerr != nil:
			return held, false, rerr
		}
	}
	return held, false, nil
}

// holdInitial is the first buffer of a body of unknown length.
const holdInitial = 2 << 10

// readUpTo appends up to n bytes read from r to buf, growing it by doubling. It stops early only
// at EOF (io.EOF) or a read error.
func readUpTo(r io.Reader, buf []byte, n int) ([]byte, int, error) {
	end := len(buf) + n
	start := len(buf)
	for len(buf) < end {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(cap(buf), holdInitial), end-len(buf)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), end)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, len(buf) - start, err
		}
	}
	return buf, len(buf) - start, nil
}

// journalReason is the metric label of a journal refusal.
func journalReason(err error) string {
	if errors.Is(err, journal.ErrFull) {
		return "journal_full"
	}
	return "journal_failed"
}

type heldBody struct {
	io.Reader
	closer  io.Closer
	release func()
	once    sync.Once
}

func (h *heldBody) Close() error {
	h.once.Do(h.release)
	return h.closer.Close()
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// record journals the event of an answered request and returns its id. The event of an intended
// request goes through the completion log: written before the answer, appended after it, so the
// client waits for one durable write (its intent) rather than two. An event the completion log
// refuses (a once-key, a failing journal: see journal.Journal.Complete), or whose request has no
// durable intent, is appended before the answer.
func (p *Proxy) record(ctx context.Context, x *exchange, d journal.Draft) (string, error) {
	if x.intended {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.AppendTimeout)
		err := p.opts.Journal.Complete(cctx, d, func(ev chain.Event, err error) { p.appended(x, d, ev, err) })
		cancel()
		if err == nil {
			return d.EventID, nil
		}
		p.log.Debug("event appended before the answer", "event_id", d.EventID, "reason", err)
	}
	ev, err := p.append(ctx, x, d)
	return ev.EventID, err
}

// append journals d and waits for it.
func (p *Proxy) append(ctx context.Context, x *exchange, d journal.Draft) (chain.Event, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.AppendTimeout)
	defer cancel()
	ev, err := p.opts.Journal.Append(actx, d)
	p.appended(x, d, ev, err)
	return ev, err
}

// appended accounts for the outcome of journaling d. Losses are counted and logged with enough
// detail to reconstruct the event.
func (p *Proxy) appended(x *exchange, d journal.Draft, ev chain.Event, err error) {
	switch {
	case err == nil:
		p.m.Events.WithLabelValues(ev.EventType, ev.Result).Inc()
		if d.Watch != nil && p.opts.Observer != nil {
			p.opts.Observer.Started(d.Watch.ExecutionID, d.Watch.WorkflowID)
		}
		p.log.Debug("audited", "event_id", ev.EventID, "sequence", ev.Sequence, "event_type", ev.EventType,
			"result", ev.Result, "resource_id", ev.ResourceID, "actor", ev.Actor.ID, "route", x.route)
	case errors.Is(err, journal.ErrDuplicate):
		p.m.Replays.Inc()
		p.log.Debug("idempotent replay: no new event", "route", x.route, "once", d.Once)
	case x.intended:
		// The intent is durable: the event is appended once the journal writes again (or, if
		// the sidecar stops first, rebuilt from the intent at the next start). Not lost.
		p.strand(d)
		p.log.Error("audit event could not be journaled yet; it is kept and appended when the journal writes again",
			"event_id", d.EventID, "event_type", d.EventType, "result", d.Result, "resource_id", d.ResourceID,
			"route", x.route, "fail_mode", x.mode, "err", err)
	default:
		reason := journalReason(err)
		p.opts.Lost.WithLabelValues(reason).Inc()
		p.log.Error("audit event could not be journaled", "event_id", d.EventID, "event_type", d.EventType,
			"result", d.Result, "resource_id", d.ResourceID, "actor", d.Actor.ID, "route", x.route,
			"fail_mode", x.mode, "err", err)
	}
}

// errorHandler answers upstream failures like a well-behaved gateway and audits the attempt.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	x, _ := r.Context().Value(ctxKey{}).(*exchange)
	if x != nil && x.failed {
		writeError(w, http.StatusInternalServerError, "FLKAUD-0500", "Audit Record Failed",
			fmt.Sprintf("the request reached Flowker (status %d) but its audit record could not be written; the change may have been applied", x.upStatus))
		return
	}
	status, code, title, msg := http.StatusBadGateway, "FLKAUD-0502", "Bad Gateway", "upstream Flowker could not be reached"
	clientGone := r.Context().Err() != nil
	if x != nil && x.client != nil {
		clientGone = x.client.Err() != nil
	}
	var ne net.Error
	timedOut := bodyTimedOut(r)
	switch {
	case timedOut != "":
		status, code, title, msg = http.StatusRequestTimeout, "408", "request_failed", "the request body was not received in time ("+timedOut+")"
		err = fmt.Errorf("request body %s timeout: %w", timedOut, err)
	case clientGone:
		status, code, title, msg = 499, "FLKAUD-0499", "Client Closed Request", "the client went away before the response"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		status, code, title, msg = http.StatusGatewayTimeout, "FLKAUD-0504", "Gateway Timeout", "upstream Flowker did not answer in time"
	case x != nil && x.reqTee != nil && x.requestSummary().Err != nil:
		status, code, title, msg = http.StatusBadRequest, "FLKAUD-0400", "Bad Request", "the request body could not be read completely"
	}
	p.log.Warn("upstream request failed", "method", r.Method, "path", r.URL.EscapedPath(), "status", status, "err", err)
	if x != nil && x.audited {
		d, record := p.infer(x, status, nil, capture.Summary{}, err)
		if !record {
			p.resolve(r.Context(), x)
		} else if ev, aerr := p.append(r.Context(), x, d); aerr == nil {
			w.Header().Set("X-Audit-Id", ev.EventID)
		}
	}
	if timedOut != "" {
		writeTimeout(w, timedOut)
		return
	}
	if clientGone {
		return
	}
	writeError(w, status, code, title, msg)
}

// writeError writes Flowker's error format {code, title, message}.
func writeError(w http.ResponseWriter, status int, code, title, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b := []byte(`{"code":`)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"title":`...)
	b = strconv.AppendQuote(b, title)
	b = append(b, `,"message":`...)
	b = strconv.AppendQuote(b, msg)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}

func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// observeBody hands the first bytes of a fully read body to done (asynchronously).
type observeBody struct {
	rc    io.ReadCloser
	limit int
	buf   []byte
	done  func([]byte)
	fired bool
}

func (o *observeBody) Read(p []byte) (int, error) {
	n, err := o.rc.Read(p)
	if room := o.limit - len(o.buf); n > 0 && room > 0 {
		o.buf = append(o.buf, p[:min(n, room)]...)
	}
	if err == io.EOF && !o.fired && len(o.buf) < o.limit {
		o.fired = true
		go o.done(o.buf)
	}
	return n, err
}

func (o *observeBody) Close() error { return o.rc.Close() }
