package fakeflowker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/internal/httpx"
)

// Version is the version the fake reports on /version and /readyz (the
// Flowker release it imitates).
const Version = "v1.0.2"

const (
	defaultExecutionDelay = 50 * time.Millisecond
	// maxBodySize is Fiber's default BodyLimit (4 MiB).
	maxBodySize = 4 << 20
	// maxExecutionBody is the 1 MiB limit of the execute and webhook handlers.
	maxExecutionBody = 1 << 20
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// APIKey, when non-empty, makes every /v1 route require the X-API-Key
	// header to equal it (constant-time). A missing or wrong key answers
	// 401 {"code":"UNAUTHORIZED","title":"Unauthorized","message":"API Key missing or invalid"}.
	// /health, /readyz and /version stay public.
	APIKey string
	// BearerAuth, when set, makes every /v1 route require "Authorization: Bearer TOKEN" (or the
	// bare token, as Flowker's plugin auth accepts) for which it returns true, as Flowker does
	// with PLUGIN_AUTH_ENABLED=true: a missing token answers 401 "Missing Token" and a token it
	// refuses (expired, unknown) 401 as the Access Manager would, in plain text.
	BearerAuth func(token string) bool
	// ExecutionDelay is the time until an execution reaches a terminal state
	// (default 50ms).
	ExecutionDelay time.Duration
	// Now is the clock used for every timestamp (default time.Now).
	Now func() time.Time
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
	// Latency is added to every response, to model a real Flowker's service time (its
	// MongoDB and PostgreSQL round trips) in benchmarks. Default 0.
	Latency time.Duration
}

// Server is the in-memory fake Flowker. It implements http.Handler and is
// safe for concurrent use.
type Server struct {
	apiKey  []byte
	bearer  func(string) bool
	delay   time.Duration
	latency time.Duration
	nowFn   func() time.Time
	log     *slog.Logger
	started time.Time
	routes  []route

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu          sync.Mutex
	workflows   map[uuid.UUID]*workflow
	executions  map[uuid.UUID]*execution
	idempotency map[string]uuid.UUID
	providers   map[uuid.UUID]*providerConfig
	executors   map[uuid.UUID]*executorConfig
	webhooks    map[string]webhookRoute
}

// New returns a Server with an empty store, except for two seeded executor
// configurations (see SeedExecutorConfig).
func New(opts Options) *Server {
	if opts.ExecutionDelay <= 0 {
		opts.ExecutionDelay = defaultExecutionDelay
	}

	if opts.Now == nil {
		opts.Now = time.Now
	}

	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	ctx, cancel := context.WithCancel(context.Background())

	s := &Server{
		delay:       opts.ExecutionDelay,
		latency:     opts.Latency,
		nowFn:       opts.Now,
		log:         opts.Logger,
		ctx:         ctx,
		cancel:      cancel,
		workflows:   make(map[uuid.UUID]*workflow),
		executions:  make(map[uuid.UUID]*execution),
		idempotency: make(map[string]uuid.UUID),
		providers:   make(map[uuid.UUID]*providerConfig),
		executors:   make(map[uuid.UUID]*executorConfig),
		webhooks:    make(map[string]webhookRoute),
	}

	if opts.APIKey != "" {
		s.apiKey = []byte(opts.APIKey)
	}
	s.bearer = opts.BearerAuth

	s.started = s.now()
	s.routes = s.buildRoutes()
	s.seedDefaults()

	return s
}

// Close stops the background goroutines that finish executions. Executions
// still running stay "running" (like a Flowker restart). Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		// Cancel under the lock: executions start their goroutine (wg.Add)
		// under the same lock only while the context is alive.
		s.mu.Lock()
		s.cancel()
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// Run listens on addr and serves a new Server until ctx is done, then shuts
// down gracefully. ready, when not nil, is called with the bound address
// once the listener is open.
func Run(ctx context.Context, addr string, opts Options, ready func(net.Addr)) error {
	var lc net.ListenConfig

	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}

	s := New(opts)
	defer s.Close()

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	if ready != nil {
		ready(ln.Addr())
	}

	errc := make(chan error, 1)

	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}

		return fmt.Errorf("serve fake flowker: %w", err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()

	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down fake flowker: %w", err)
	}

	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve fake flowker: %w", err)
	}

	return nil
}

func (s *Server) now() time.Time {
	return s.nowFn().UTC()
}

// knownMethods are Fiber's default RequestMethods, in Fiber's order (used
// for the Allow header).
var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch,
}

func isKnownMethod(m string) bool {
	for _, k := range knownMethods {
		if k == m {
			return true
		}
	}

	return false
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := httpx.NewStatusRecorder(w, nil)
	if d := s.latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	s.serve(sw, r)

	s.log.Debug("fake flowker request", slog.String("method", r.Method),
		slog.String("path", rawRequestPath(r)), slog.Int("status", sw.Status()))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqID := strings.TrimSpace(r.Header.Get("X-Request-Id"))
	if reqID == "" {
		reqID = uuid.NewString()
	}

	w.Header().Set("X-Request-Id", reqID)

	if !isKnownMethod(r.Method) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotImplemented)
		_, _ = io.WriteString(w, "Not Implemented")

		return
	}

	rawPath := rawRequestPath(r)

	body, tooLarge, err := readBody(r)
	if tooLarge {
		writeFrameworkError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}

	if err != nil {
		writeFrameworkError(w, http.StatusBadRequest, "Bad Request")
		return
	}

	detection := detectionPath(rawPath)

	// CORS middleware: a preflight is answered before any guard.
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}

	// Every guard is a "use" middleware on the /v1 prefix.
	if s.apiKey != nil && strings.HasPrefix(detection, "/v1") {
		key := r.Header.Get("X-API-Key")
		if key == "" || subtle.ConstantTimeCompare([]byte(key), s.apiKey) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiError{Code: "UNAUTHORIZED", Title: "Unauthorized", Message: "API Key missing or invalid"})
			return
		}
	}

	if s.bearer != nil && strings.HasPrefix(detection, "/v1") {
		tok := strings.TrimSpace(r.Header.Get("Authorization"))
		if t, ok := strings.CutPrefix(tok, "Bearer "); ok {
			tok = strings.TrimSpace(t)
		}
		switch {
		case tok == "":
			http.Error(w, "Missing Token", http.StatusUnauthorized)
			return
		case !s.bearer(tok):
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	}

	rt, params, allow := s.match(r.Method, detection, rawPath)
	if rt == nil {
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeFrameworkError(w, http.StatusMethodNotAllowed, "Method Not Allowed")

			return
		}

		writeFrameworkError(w, http.StatusNotFound, "Cannot "+r.Method+" "+htmlEscape(rawPath))

		return
	}

	rt.handler(&reqCtx{w: w, r: r, body: body, params: params})
}

// rawRequestPath returns the request path exactly as received (fasthttp's
// PathOriginal): not percent-decoded and not cleaned.
func rawRequestPath(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			uri = uri[:i]
		}

		return uri
	}

	if r.URL != nil {
		return r.URL.EscapedPath()
	}

	return uri
}

// detectionPath is Fiber's route-detection path: ASCII lower-cased, all
// trailing slashes stripped (except for the root).
func detectionPath(raw string) string {
	b := []byte(raw)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}

	if len(b) > 1 && b[len(b)-1] == '/' {
		for len(b) > 0 && b[len(b)-1] == '/' {
			b = b[:len(b)-1]
		}
	}

	return string(b)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

func readBody(r *http.Request) ([]byte, bool, error) {
	if r.Body == nil {
		return nil, false, nil
	}

	if r.ContentLength > maxBodySize {
		return nil, true, nil
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodySize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read request body: %w", err)
	}

	if len(body) > maxBodySize {
		return nil, true, nil
	}

	return body, false, nil
}
