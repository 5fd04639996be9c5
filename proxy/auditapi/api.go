package auditapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/internal/httpx"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Options configures the audit API.
type Options struct {
	// Querier returns the query sink; an error means it is unavailable (answered 503 FLK-0612,
	// the cause is logged). Called once per request. Required.
	Querier func(ctx context.Context) (sink.Querier, error)
	// Auth decides who may query. Nil means NoneConfigured: every request is refused with 401.
	Auth Authenticator
	// CursorKey authenticates cursors (HMAC-SHA256); at least MinCursorKeyLen bytes. Keep it
	// stable across restarts and identical on replicas behind one address, or outstanding
	// cursors are rejected (400 FLK-0610). Required.
	CursorKey []byte
	// Registerer receives the metrics; nil registers on a private registry (metrics unseen).
	Registerer prometheus.Registerer
	// Logger receives store failures and bugs; nil discards.
	Logger *slog.Logger
	// Now is the clock used for request durations; default time.Now.
	Now func() time.Time
	// MaxVerify bounds how many events one verify call recomputes: when the event's sequence is
	// above it, only the last MaxVerify events up to it are recomputed, linked to the stored hash
	// of the event before them (fromSequence in the answer says so). 0 checks the whole chain.
	MaxVerify uint64
	// Checkpoints returns the signed checkpoint log and its verification keys, read afresh for each
	// verify call; nil checks hashes and links only (and says so in the answer's warnings).
	Checkpoints func(chainID string) (*checkpoint.Evidence, error)
	// ActorNames maps actor ids, exactly as they appear in events (for API keys, the fingerprint
	// "key:..."), to display names for the Audit Trail page. Served by /audit-trail/config.json.
	ActorNames map[string]string
	// Caller names the caller of a request for the access log and metrics (never the
	// credential): the app passes the API-key fingerprint of identity.fingerprint_key, so that
	// identity.api_key_names apply. Nil fingerprints credentials under CursorKey.
	Caller CallerFunc
	// AccessLogger receives one "audit trail read" line per call; nil uses Logger.
	AccessLogger *slog.Logger
	// CheckpointLog is the signed checkpoint log (chain.checkpoint_log); the NDJSON export carries,
	// per chain, a checkpoint read from it. Empty: exports carry none.
	CheckpointLog string
}

// API answers the audit endpoints. Create it with New.
type API struct {
	querier   func(ctx context.Context) (sink.Querier, error)
	auth      Authenticator
	codec     cursorCodec
	log       *slog.Logger
	now       func() time.Time
	maxVerify uint64
	evidence  func(chainID string) (*checkpoint.Evidence, error)
	metrics   *metrics
	uiConfig  []byte

	checkpointLog string
	caller        CallerFunc
	actorNames    map[string]string
	access        *accessMetrics
	accessLog     *slog.Logger
}

// New validates opts and returns the API.
func New(opts Options) (*API, error) {
	if opts.Querier == nil {
		return nil, errors.New("audit api: Querier is required")
	}
	if len(opts.CursorKey) < MinCursorKeyLen {
		return nil, fmt.Errorf("audit api: CursorKey must be at least %d bytes, got %d", MinCursorKeyLen, len(opts.CursorKey))
	}
	a := &API{
		querier:   opts.Querier,
		auth:      opts.Auth,
		codec:     cursorCodec{key: append([]byte(nil), opts.CursorKey...)},
		log:       opts.Logger,
		now:       opts.Now,
		maxVerify: opts.MaxVerify,
		evidence:  opts.Checkpoints,

		checkpointLog: opts.CheckpointLog,
		caller:        opts.Caller,
		accessLog:     opts.AccessLogger,
		actorNames:    map[string]string{},
	}
	for k, v := range opts.ActorNames {
		a.actorNames[k] = v
	}
	if a.caller == nil {
		a.caller = FingerprintCaller(a.codec.key)
	}

	if a.auth == nil {
		a.auth = NoneConfigured{}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.accessLog == nil {
		a.accessLog = a.log
	}
	if a.now == nil {
		a.now = time.Now
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	if a.access, err = newAccessMetrics(reg); err != nil {
		return nil, fmt.Errorf("register audit api access metrics: %w", err)
	}
	mode := AuthModeNone
	if m, ok := a.auth.(AuthModer); ok {
		mode = m.AuthMode()
	}
	a.uiConfig, err = json.Marshal(buildUIConfig(opts.ActorNames, mode))
	if err != nil {
		return nil, fmt.Errorf("audit api: encode ui config: %w", err)
	}
	return a, nil
}

// AuthMode is the mode reported to the Audit Trail page ("api_key", "delegate" or "none").
func (a *API) AuthMode() string {
	if m, ok := a.auth.(AuthModer); ok {
		return m.AuthMode()
	}
	return AuthModeNone
}

type route uint8

const (
	routeNone route = iota
	routeList
	routeGet
	routeVerify
	routeUIConfig
	routeExport
	routeOpenAPI
)

func (r route) endpoint() string {
	switch r {
	case routeList:
		return "list"
	case routeGet:
		return "get"
	case routeVerify:
		return "verify"
	case routeUIConfig:
		return "ui-config"
	case routeExport:
		return "export"
	case routeOpenAPI:
		return "openapi"
	}
	return "none"
}

// UIConfigPath is the Audit Trail page's configuration, served by the API (authenticated).
const UIConfigPath = "/audit-trail/config.json"

// matchRoute matches like Flowker's router: case-insensitive, one trailing slash ignored.
func matchRoute(path string) (route, string) {
	for len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1] // Fiber's router strips every trailing slash
	}
	if strings.EqualFold(path, UIConfigPath) {
		return routeUIConfig, ""
	}
	if strings.EqualFold(path, OpenAPIPath) {
		return routeOpenAPI, ""
	}
	const base = "/v1/audit-events"
	if len(path) < len(base) || !strings.EqualFold(path[:len(base)], base) {
		return routeNone, ""
	}
	rest := path[len(base):]
	if rest == "" {
		return routeList, ""
	}
	if rest[0] != '/' {
		return routeNone, ""
	}
	if strings.EqualFold(rest, ExportPath[len(base):]) {
		return routeExport, ""
	}
	id, tail, more := strings.Cut(rest[1:], "/")
	switch {
	case id == "":
		return routeNone, ""
	case !more:
		return routeGet, id
	case strings.EqualFold(tail, "verify"):
		return routeVerify, id
	}
	return routeNone, ""
}

// Match reports whether r is for the audit API (any method); everything else goes to Flowker.
func (a *API) Match(r *http.Request) bool {
	rt, _ := matchRoute(r.URL.Path)
	return rt != routeNone
}

// ServeHTTP answers a request that Match accepted.
func (a *API) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	rt, id := matchRoute(r.URL.Path)
	if rt == routeNone {
		writeJSON(rw, http.StatusNotFound, frameworkError{Code: http.StatusNotFound, Title: frameworkTitle,
			Message: "Cannot " + r.Method + " " + r.URL.Path})
		return
	}
	start := a.now()
	w := httpx.NewStatusRecorder(rw, a.now)
	rows := 0
	if rt != routeOpenAPI {
		defer func() { a.logAccess(r, rt, id, w.Status(), rows, a.now().Sub(start)) }()
	}
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value
				panic(rec)
			}
			a.log.Error("audit api: panic", "endpoint", rt.endpoint(), "panic", fmt.Sprint(rec))
			if w.Status() == 0 {
				writeError(w, errInternal)
			}
		}
		ep := rt.endpoint()
		a.metrics.requests.WithLabelValues(ep, strconv.Itoa(w.Status())).Inc()
		a.metrics.duration.WithLabelValues(ep).Observe(a.now().Sub(start).Seconds())
	}()

	if rt == routeOpenAPI && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		serveOpenAPI(w, r) // public, like Flowker's /swagger
		return
	}
	if err := a.auth.Authenticate(r.Context(), r); err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			writeError(w, &apiError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Title: titleUnauthorized, Message: d.Message})
			return
		}
		if r.Context().Err() != nil {
			w.WriteHeader(httpx.StatusClientClosed)
			return
		}
		a.log.Warn("audit api: cannot check credentials", "err", err)
		writeError(w, errAuthUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, frameworkError{Code: http.StatusMethodNotAllowed, Title: frameworkTitle, Message: "Method Not Allowed"})
		return
	}
	if rt == routeUIConfig {
		writeJSONBytes(w, http.StatusOK, a.uiConfig)
		return
	}
	// Validate the request before touching the store, so bad input is 400 even when it is down.
	var (
		search searchRequest
		exp    exportRequest
		evID   string
	)
	switch rt {
	case routeExport:
		var apiErr *apiError
		if exp, apiErr = parseExport(r.URL.RawQuery, a.codec); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	case routeList:
		var apiErr *apiError
		if search, apiErr = parseSearch(r.URL.RawQuery, a.codec); apiErr != nil {
			writeError(w, apiErr)
			return
		}
	case routeGet, routeVerify:
		u, err := uuid.Parse(id)
		if err != nil {
			writeError(w, badRequest(CodeInvalidID, "invalid audit event ID"))
			return
		}
		evID = u.String()
	}
	q, err := a.querier(r.Context())
	if err != nil {
		a.log.Error("audit api: query sink unavailable", "endpoint", rt.endpoint(), "err", err)
		writeError(w, errStoreUnavailable)
		return
	}
	switch rt {
	case routeList:
		rows = a.list(w, r, q, search)
	case routeGet:
		rows = a.get(w, r, q, evID)
	case routeVerify:
		rows = a.verify(w, r, q, evID)
	case routeExport:
		rows = a.export(w, r, q, exp)
	}
}

// storeError answers a failed sink call: 499 when the client went away, else 503 (logged).
func (a *API) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if r.Context().Err() != nil {
		a.log.Debug("audit api: client went away", "op", op)
		w.WriteHeader(httpx.StatusClientClosed)
		return
	}
	a.log.Error("audit api: query sink failed", "op", op, "err", err)
	writeError(w, errStoreUnavailable)
}

func (a *API) list(w http.ResponseWriter, r *http.Request, q sink.Querier, s searchRequest) int {
	var page sink.Page
	if !s.Empty {
		var err error
		page, err = q.Search(r.Context(), sink.Query{Filter: s.Filter, Order: s.Order, After: s.After, Limit: s.Limit})
		if err != nil {
			a.storeError(w, r, "search", err)
			return 0
		}
	}
	if len(page.Events) > s.Limit { // a sink that ignored Limit: cut, and there is more
		page.Events, page.More = page.Events[:s.Limit], true
	}
	if err := checkFiltered(page.Events, &s.Filter); err != nil {
		a.log.Error("audit api: query sink ignored a filter (a plugin built before that filter existed?)", "err", err)
		writeError(w, errStoreUnavailable)
		return 0
	}
	next := ""
	if page.More && len(page.Events) > 0 {
		var err error
		next, err = a.codec.encode(cursorState{Pos: sink.PositionOf(&page.Events[len(page.Events)-1]), Order: s.Order, Filter: digestFilter(s.Filter)})
		if err != nil {
			a.log.Error("audit api: cannot encode cursor", "err", err)
			writeError(w, errInternal)
			return 0
		}
	}
	b := make([]byte, 0, 256+len(page.Events)*900)
	b = append(b, `{"items":[`...)
	for i := range page.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEvent(b, &page.Events[i])
		if page.Events[i].ConflictingDuplicate {
			a.metrics.duplicates.Inc()
		}
	}
	b = append(b, `],"nextCursor":`...)
	b = appendString(b, next)
	b = append(b, `,"hasMore":`...)
	b = strconv.AppendBool(b, next != "")
	b = append(b, "}\n"...)
	writeJSONBytes(w, http.StatusOK, b)
	return len(page.Events)
}

func (a *API) get(w http.ResponseWriter, r *http.Request, q sink.Querier, id string) int {
	ev, err := q.Get(r.Context(), id)
	if errors.Is(err, sink.ErrNotFound) {
		writeError(w, errNotFound)
		return 0
	}
	if err != nil {
		a.storeError(w, r, "get", err)
		return 0
	}
	if ev.ConflictingDuplicate {
		a.metrics.duplicates.Inc()
	}
	writeJSONBytes(w, http.StatusOK, append(appendEvent(nil, &ev), '\n'))
	return 1
}

// checkFiltered reports an event that does not match f: a sink plugin built against an older SDK
// drops filter fields it does not know (protobuf ignores unknown fields) and would answer an
// actor-filtered search with everyone's events.
func checkFiltered(events []chain.Event, f *sink.Filter) error {
	for i := range events {
		if !f.Matches(&events[i]) {
			return fmt.Errorf("%w: event %s (chain %s, sequence %d) does not match the search filter", errFilterIgnored, events[i].EventID, events[i].ChainID, events[i].Sequence)
		}
	}
	return nil
}

// VerifyOutput is the answer of GET /v1/audit-events/{id}/verify: Flowker's
// HashChainVerificationOutput (isValid, firstInvalidId, totalChecked, message) plus what was
// checked. FirstInvalidID is a chain sequence number (Flowker: its internal row id). The answer
// comes from checkpoint.Verify, the verifier `flowker-audit verify` uses too.
type VerifyOutput struct {
	IsValid        bool    `json:"isValid"`
	FirstInvalidID *uint64 `json:"firstInvalidId,omitempty"`
	TotalChecked   uint64  `json:"totalChecked"`
	Message        string  `json:"message"`
	ChainID        string  `json:"chainId"`
	FromSequence   uint64  `json:"fromSequence"`
	ToSequence     uint64  `json:"toSequence"`
	Reason         string  `json:"reason,omitempty"`
	Detail         string  `json:"detail,omitempty"`

	// Against the signed checkpoint log:
	// CheckpointsChecked is false when no checkpoint log was available (hashes and links only).
	CheckpointsChecked bool `json:"checkpointsChecked"`
	// Checkpoints is the number of validly signed checkpoints of the chain; CheckpointsMatched
	// those inside the verified range whose event carried the signed hash.
	Checkpoints        int `json:"checkpoints"`
	CheckpointsMatched int `json:"checkpointsMatched"`
	// NewestCheckpoint is the newest checkpoint used (matched inside the range), if any.
	NewestCheckpoint *CheckpointRef `json:"newestCheckpoint,omitempty"`
	// NotYetCovered counts verified events after NewestCheckpoint (or all when none): their
	// links were checked, but no signed checkpoint proves them yet.
	NotYetCovered uint64 `json:"notYetCovered"`
	// DepartsAfterSequence, on a checkpoint mismatch, is the last sequence still proved by a
	// matching checkpoint: the stored chain departs somewhere after it, at or before
	// firstInvalidId.
	DepartsAfterSequence *uint64 `json:"departsAfterSequence,omitempty"`
	// Coverage says the above in a sentence; Warnings say what weakened the check (no log, an
	// empty or torn log).
	Coverage string   `json:"coverage"`
	Warnings []string `json:"warnings,omitempty"`

	// VerifiedFrom is the first sequence actually verified: FromSequence, or the sequence after
	// RetentionAnchor when retention removed the events before it (then the first remaining
	// event was linked to the anchor's signed hash).
	VerifiedFrom    uint64     `json:"verifiedFrom"`
	RetentionAnchor *AnchorRef `json:"retentionAnchor,omitempty"`
}

// AnchorRef names a signed retention anchor.
type AnchorRef struct {
	Sequence uint64    `json:"sequence"`
	Hash     string    `json:"hash"`
	Cutoff   time.Time `json:"cutoff"`
	Time     time.Time `json:"time"`
	KeyID    string    `json:"keyId"`
}

// CheckpointRef names a signed checkpoint.
type CheckpointRef struct {
	Sequence uint64    `json:"sequence"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	KeyID    string    `json:"keyId"`
}

func (a *API) verify(w http.ResponseWriter, r *http.Request, q sink.Querier, id string) int {
	ctx := r.Context()
	ev, err := q.Get(ctx, id)
	if errors.Is(err, sink.ErrNotFound) {
		writeError(w, errNotFound)
		return 0
	}
	if err != nil {
		a.storeError(w, r, "get", err)
		return 0
	}
	out := VerifyOutput{ChainID: ev.ChainID, FromSequence: 1, ToSequence: ev.Sequence, VerifiedFrom: 1}
	fail := func(seq uint64, reason chain.Reason, detail string) {
		out.IsValid = false
		out.FirstInvalidID = &seq
		out.Reason = string(reason)
		out.Detail = detail
		out.Message = fmt.Sprintf("hash chain broken at sequence %d: %s", seq, reason)
	}
	if ev.Sequence == 0 {
		fail(0, chain.ReasonOutOfOrder, "the event has no sequence number")
		a.finishVerify(w, out)
		return 0
	}
	req := checkpoint.Request{ChainID: ev.ChainID, From: 1, To: ev.Sequence}
	if a.evidence != nil {
		if req.Evidence, err = a.evidence(ev.ChainID); err != nil {
			a.log.Error("audit api: reading the checkpoint log", "err", err)
			req.Evidence = &checkpoint.Evidence{Warnings: []string{"the checkpoint log could not be read: " + err.Error()}}
		}
	}
	if req.Evidence != nil {
		// The checkpoints the query sink keeps count too (signatures checked like the log's).
		if cr, ok := q.(sink.CheckpointReader); ok {
			if cps, err := cr.ReadCheckpoints(ctx, ev.ChainID); err == nil {
				req.Evidence.Add(checkpointsFromSink(cps)...)
			} else if !errors.Is(err, sink.ErrUnsupported) {
				a.log.Warn("audit api: reading the query sink's checkpoints", "err", err)
			}
		}
		a.addAnchors(ctx, q, ev.ChainID, req.Evidence) // retention.go
	}
	chains, err := q.Chains(ctx)
	if err != nil {
		a.storeError(w, r, "chains", err)
		return 0
	}
	for _, c := range chains {
		if c.ChainID == ev.ChainID {
			req.StoredLast = c.Last
		}
	}
	if a.maxVerify > 0 && ev.Sequence > a.maxVerify && !req.Evidence.StartsAfterAnchor(ev.ChainID, ev.Sequence-a.maxVerify+1) {
		req.From = ev.Sequence - a.maxVerify + 1
		out.FromSequence, out.VerifiedFrom = req.From, req.From
		found := false
		err := q.ReadChain(ctx, ev.ChainID, req.From-1, req.From-1, func(e *chain.Event) error {
			if e.Sequence == req.From-1 {
				req.PrevHash, found = e.Hash, true
			}
			return nil
		})
		if err != nil {
			a.storeError(w, r, "read chain", err)
			return 0
		}
		if !found {
			fail(req.From-1, chain.ReasonGap, fmt.Sprintf("sequence %d missing", req.From-1))
			a.finishVerify(w, out)
			return 0
		}
	}
	rep, err := checkpoint.Verify(ctx, q.ReadChain, req)
	if err != nil {
		a.storeError(w, r, "read chain", err)
		return 0
	}
	out.TotalChecked = rep.Checked
	out.CheckpointsChecked = req.Evidence != nil && len(req.Evidence.Keys) > 0
	out.Checkpoints, out.CheckpointsMatched, out.NotYetCovered = rep.Checkpoints, rep.Matched, rep.NotYetCovered
	if rep.Used != nil {
		out.NewestCheckpoint = &CheckpointRef{Sequence: rep.Used.Sequence, Hash: rep.Used.Hash, Time: rep.Used.Time, KeyID: rep.Used.KeyID}
	}
	out.Warnings = rep.Warnings
	if req.Evidence == nil {
		out.Warnings = append(out.Warnings, "no signed checkpoint log is configured: only hashes and links are checked (a chain cut short at its end, or re-linked, would pass)")
	}
	out.Coverage = rep.Summary()
	out.VerifiedFrom = rep.From
	if an := rep.Anchor; an != nil {
		out.RetentionAnchor = &AnchorRef{Sequence: an.Sequence, Hash: an.Hash, Cutoff: an.Cutoff, Time: an.Time, KeyID: an.KeyID}
	}
	switch p := rep.Problem; {
	case p != nil:
		fail(p.Sequence, p.Reason, p.Detail)
		if p.Reason == chain.ReasonCheckpointMismatch {
			d := rep.DepartsAfter
			out.DepartsAfterSequence = &d
		}
	default:
		// The event found by id must be the one the chain holds at its sequence (a duplicate row
		// with other content would otherwise pass).
		var hash string
		if err := q.ReadChain(ctx, ev.ChainID, ev.Sequence, ev.Sequence, func(e *chain.Event) error {
			if e.Sequence == ev.Sequence && hash == "" {
				hash = e.Hash
			}
			return nil
		}); err != nil {
			a.storeError(w, r, "read chain", err)
			return 0
		}
		if hash != ev.Hash {
			fail(ev.Sequence, chain.ReasonHashMismatch, fmt.Sprintf("the event found by id has hash %s, the chain has %s at its sequence", ev.Hash, hash))
			break
		}
		out.IsValid = true
		out.Message = "hash chain is valid"
	}
	a.finishVerify(w, out)
	return int(out.TotalChecked)
}

// checkpointsFromSink converts checkpoints read from a sink.
func checkpointsFromSink(cps []sink.Checkpoint) []checkpoint.Checkpoint {
	out := make([]checkpoint.Checkpoint, len(cps))
	for i, c := range cps {
		out[i] = checkpoint.Checkpoint{ChainID: c.ChainID, Sequence: c.Sequence, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Signature: c.Signature}
	}
	return out
}

func (a *API) finishVerify(w http.ResponseWriter, out VerifyOutput) {
	if !out.IsValid {
		a.metrics.verifyFailures.Inc()
		a.log.Warn("audit api: hash chain verification failed", "chainId", out.ChainID, "sequence", *out.FirstInvalidID, "reason", out.Reason)
	}
	writeJSON(w, http.StatusOK, out)
}

// EventTypeOption is one event type of the Audit Trail page's Event Type filter.
type EventTypeOption struct {
	Value  string `json:"value"`  // the API value, e.g. WORKFLOW_CREATED
	Label  string `json:"label"`  // e.g. "Workflow Created"
	Family string `json:"family"` // workflow, execution, provider or other (badge colour)
}

// EventTypeGroup is one <optgroup> of the Event Type filter.
type EventTypeGroup struct {
	Group string            `json:"group"`
	Types []EventTypeOption `json:"types"`
}

// UIConfig is the answer of GET /audit-trail/config.json.
type UIConfig struct {
	ActorNames    map[string]string `json:"actorNames"`
	EventTypes    []EventTypeGroup  `json:"eventTypes"`
	Results       []string          `json:"results"`
	ResourceTypes []string          `json:"resourceTypes"`
	AuthMode      string            `json:"authMode"`
}

// EventFamily returns the badge family of an event type: workflow, execution, provider or other.
func EventFamily(eventType string) string {
	switch {
	case strings.HasPrefix(eventType, "WORKFLOW_"):
		return "workflow"
	case strings.HasPrefix(eventType, "EXECUTION_"):
		return "execution"
	case strings.HasPrefix(eventType, "PROVIDER_"):
		return "provider"
	}
	return "other"
}

// EventLabel renders an event type as the seed names it: WORKFLOW_CREATED -> "Workflow Created".
func EventLabel(eventType string) string {
	words := strings.Split(strings.ToLower(eventType), "_")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func buildUIConfig(names map[string]string, mode string) UIConfig {
	cfg := UIConfig{ActorNames: map[string]string{}, Results: chain.Results, ResourceTypes: chain.ResourceTypes, AuthMode: mode}
	for k, v := range names {
		cfg.ActorNames[k] = v
	}
	groups := []EventTypeGroup{{Group: "Workflow"}, {Group: "Execution"}, {Group: "Provider"}, {Group: "Other"}}
	index := map[string]int{"workflow": 0, "execution": 1, "provider": 2, "other": 3}
	for _, t := range chain.EventTypes {
		fam := EventFamily(t)
		g := &groups[index[fam]]
		g.Types = append(g.Types, EventTypeOption{Value: t, Label: EventLabel(t), Family: fam})
	}
	cfg.EventTypes = groups[:0]
	for _, g := range groups {
		if len(g.Types) > 0 {
			cfg.EventTypes = append(cfg.EventTypes, g)
		}
	}
	return cfg
}
