package auditapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Access logging: every call of the audit API and of the page's data endpoint leaves a
// structured log line (who, what, when, how many rows) and counts in metrics by caller, so that
// "who looked at the trail" has an answer.

// maxCallerLabels bounds the distinct caller label values of the access metrics; later callers
// are counted as "other" (the log line still names them).
const maxCallerLabels = 64

// accessMetrics count audit API calls and the events they returned, by caller.
type accessMetrics struct {
	calls *prometheus.CounterVec
	rows  *prometheus.CounterVec

	mu      sync.Mutex
	callers map[string]bool
}

func newAccessMetrics(reg prometheus.Registerer) (*accessMetrics, error) {
	m := &accessMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowker_audit", Subsystem: "access", Name: "requests_total",
			Help: "Calls of the audit API and the page's data endpoints, by caller (key name, or fingerprint), endpoint and HTTP status.",
		}, []string{"caller", "endpoint", "code"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowker_audit", Subsystem: "access", Name: "events_returned_total",
			Help: "Audit events returned to callers (listed, fetched, verified or exported), by caller and endpoint.",
		}, []string{"caller", "endpoint"}),
		callers: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{m.calls, m.rows} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// label returns the caller label, "other" past maxCallerLabels distinct callers.
func (m *accessMetrics) label(caller string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.callers[caller] {
		return caller
	}
	if len(m.callers) >= maxCallerLabels {
		return "other"
	}
	m.callers[caller] = true
	return caller
}

// CallerFunc names who made a request, from its credential (never the credential itself): for an
// API key the fingerprint identity.api_key_names uses ("key:..."), so configured names apply.
type CallerFunc func(r *http.Request) string

// FingerprintCaller names callers by the keyed fingerprint of their credential (HMAC-SHA256
// under key, 12 hex digits): "key:..." for an X-API-Key, exactly the actor id the proxy records
// for that key with the same key (identity.Fingerprint), "bearer:..." for a token, "anonymous".
func FingerprintCaller(key []byte) CallerFunc {
	fp := func(prefix, secret string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(secret))
		return prefix + hex.EncodeToString(m.Sum(nil))[:12]
	}
	return func(r *http.Request) string {
		if k := r.Header.Get(HeaderAPIKey); k != "" {
			return fp("key:", k)
		}
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return fp("bearer:", strings.TrimSpace(a[7:]))
		}
		return "anonymous"
	}
}

// accessFilters returns the search parameters of a list or export call as given, for the log
// (the cursor only as "next page": it is opaque and long).
func accessFilters(rawQuery string) map[string]string {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return map[string]string{"query": "unparsable"}
	}
	out := map[string]string{}
	for _, name := range append(knownParams, paramFormat) {
		if s := v.Get(name); s != "" {
			if name == paramCursor {
				s = "next page"
			}
			out[name] = clip(s)
		}
	}
	return out
}

// Read is one call of the audit API, as the access log line says it (Options.OnRead).
type Read struct {
	Caller     string            // "key:<fingerprint>", "bearer:<fingerprint>" or "anonymous"
	CallerName string            // the configured name of the caller's key, if any
	Endpoint   string            // list, get, verify, export, ui-config; "access-" before them for the access trail
	Method     string            // GET or HEAD
	Path       string            // the request path (no query string)
	Filters    map[string]string // search parameters of a list or export (the cursor only as "next page")
	EventID    string            // the id asked for by get and verify
	Status     int               // the HTTP status answered
	Rows       int               // events returned (listed, fetched, checked by verify, exported)
	Duration   time.Duration
	RemoteAddr string
}

// endpointName is the endpoint label of a route: "access-" before it on the access trail.
func endpointName(rt route, access bool) string {
	if access {
		return "access-" + rt.endpoint()
	}
	return rt.endpoint()
}

// logAccess writes the access line, counts the call and hands an authenticated call to OnRead.
func (a *API) logAccess(r *http.Request, rt route, id string, access, authed bool, status, rows int, took time.Duration) {
	caller := a.caller(r)
	name := a.actorNames[caller]
	label := caller
	if name != "" {
		label = name
	}
	ep := endpointName(rt, access)
	code := status
	if code == 0 {
		code = http.StatusOK
	}
	a.access.calls.WithLabelValues(a.access.label(label), ep, itoa(code)).Inc()
	if rows > 0 {
		a.access.rows.WithLabelValues(a.access.label(label), ep).Add(float64(rows))
	}
	attrs := []slog.Attr{
		slog.String("caller", caller), slog.String("endpoint", ep), slog.String("method", r.Method),
		slog.Int("status", code), slog.Int("rows", rows), slog.Float64("duration_ms", float64(took.Microseconds())/1000),
		slog.String("remote_addr", r.RemoteAddr),
	}
	if name != "" {
		attrs = append(attrs, slog.String("caller_name", name))
	}
	if id != "" {
		attrs = append(attrs, slog.String("event_id", clip(id)))
	}
	var f map[string]string
	if rt == routeList || rt == routeExport {
		f = accessFilters(r.URL.RawQuery)
		args := make([]any, 0, 2*len(f))
		for _, k := range append(knownParams, paramFormat) {
			if v, ok := f[k]; ok {
				args = append(args, k, v)
			}
		}
		attrs = append(attrs, slog.Group("filters", args...))
	}
	a.accessLog.LogAttrs(r.Context(), slog.LevelInfo, "audit trail read", attrs...)
	// Calls refused before they were authenticated stay in the log line and metrics only:
	// recording them as events would let anyone fill the access trail.
	if a.onRead != nil && authed {
		read := Read{Caller: caller, CallerName: name, Endpoint: ep, Method: r.Method, Path: r.URL.Path, Filters: f,
			Status: code, Rows: rows, Duration: took, RemoteAddr: r.RemoteAddr}
		if id != "" {
			read.EventID = clip(id)
		}
		a.onRead(r.Context(), read)
	}
}

func itoa(n int) string {
	if n >= 100 && n < 1000 {
		return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
	}
	return "other"
}
