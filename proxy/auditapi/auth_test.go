package auditapi

import (
	"context"
	"errors"
	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
)

const unauthorizedBody = `{"code":"UNAUTHORIZED","title":"Unauthorized","message":"API Key missing or invalid"}`

func TestStaticKeys(t *testing.T) {
	events := testEvents(30)
	env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) {
		o.Auth, _ = NewStaticKeys([]string{"first-key", testKey})
	})
	known := "/v1/audit-events/" + events[0].EventID
	unknown := "/v1/audit-events/6ba7b810-9dad-41d1-80b4-00c04fd430c8"
	for _, tc := range []struct {
		name   string
		key    string
		target string
		status int
	}{
		{"no key", "", known, 401},
		{"no key, unknown id", "", unknown, 401},
		{"wrong key", "wrong", known, 401},
		{"wrong key, unknown id", "wrong", unknown, 401},
		{"prefix of a key", testKey[:10], known, 401},
		{"key plus suffix", testKey + "x", known, 401},
		{"wrong key, bad id", "wrong", "/v1/audit-events/nope", 401},
		{"wrong key, verify", "wrong", known + "/verify", 401},
		{"wrong key, list", "wrong", "/v1/audit-events?limit=x", 401},
		{"right key", testKey, known, 200},
		{"other right key", "first-key", known, 200},
		{"right key, unknown id", testKey, unknown, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.key != "" {
				hdr[HeaderAPIKey] = tc.key
			}
			w := env.do(t, http.MethodGet, tc.target, hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 401 && strings.TrimSpace(w.Body.String()) != unauthorizedBody {
				t.Fatalf("body %s", w.Body)
			}
		})
	}
	if _, err := NewStaticKeys(nil); err == nil {
		t.Fatal("empty key list accepted")
	}
	if _, err := NewStaticKeys([]string{"a", ""}); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestNoneConfigured(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(), func(o *Options) { o.Auth = nil })
	w := env.get(t, "/v1/audit-events")
	if w.Code != 401 || strings.TrimSpace(w.Body.String()) != `{"code":"UNAUTHORIZED","title":"Unauthorized","message":"audit API authentication is not configured"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if env.api.AuthMode() != AuthModeNone {
		t.Fatal(env.api.AuthMode())
	}
}

// fakeFlowker answers the delegation probe like Flowker with API-key auth, counting calls.
type fakeFlowker struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	status int // when set, answer this status instead
	body   string
	seen   []http.Header
}

func newFakeFlowker(t *testing.T, key string) *fakeFlowker {
	f := &fakeFlowker{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.mu.Lock()
		f.seen = append(f.seen, r.Header.Clone())
		status, body := f.status, f.body
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case status != 0:
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		case r.URL.Path != nilEventPath || r.Method != http.MethodGet:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"code":404,"title":"request_failed","message":"Cannot GET"}`))
		case r.Header.Get(HeaderAPIKey) != key && r.Header.Get("Authorization") != "Bearer "+key:
			w.WriteHeader(401)
			_, _ = w.Write([]byte(unauthorizedBody))
		default:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"code":"FLK-0600","title":"Not Found","message":"audit entry not found"}`))
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFlowker) set(status int, body string) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestDelegate(t *testing.T) {
	const flowkerKey = "flowker-key-xyz"
	events := testEvents(30)
	known := "/v1/audit-events/" + events[0].EventID
	setup := func(t *testing.T) (*fakeFlowker, *fakeClock, *testEnv) {
		f := newFakeFlowker(t, flowkerKey)
		clock := &fakeClock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
		u, _ := url.Parse(f.srv.URL)
		logs := &syncbuf.Buffer{}
		d, err := NewDelegate(DelegateOptions{Upstream: u, TTL: time.Minute, NegativeTTL: 10 * time.Second, Now: clock.Now,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) {
			o.Auth = d
			o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		})
		env.logs = logs // one log for the API and the delegate, checked for credentials
		return f, clock, env
	}
	get := func(env *testEnv, hdr map[string]string) int {
		return env.do(t, http.MethodGet, known, hdr).Code
	}

	t.Run("allowed, refused, cached", func(t *testing.T) {
		f, clock, env := setup(t)
		if got := get(env, map[string]string{HeaderAPIKey: flowkerKey}); got != 200 {
			t.Fatalf("right key: %d", got)
		}
		if got := get(env, map[string]string{"Authorization": "Bearer " + flowkerKey}); got != 200 {
			t.Fatalf("right bearer token: %d", got)
		}
		if got := get(env, map[string]string{HeaderAPIKey: "wrong"}); got != 401 {
			t.Fatalf("wrong key: %d", got)
		}
		if got := get(env, nil); got != 401 {
			t.Fatalf("no key: %d", got)
		}
		// No credential is refused without asking Flowker (which may run without auth).
		if n := f.calls.Load(); n != 3 {
			t.Fatalf("%d upstream calls", n)
		}
		// The credentials reached Flowker unchanged.
		if f.seen[0].Get(HeaderAPIKey) != flowkerKey || f.seen[1].Get("Authorization") != "Bearer "+flowkerKey {
			t.Fatalf("forwarded headers %v", f.seen[:2])
		}
		// Cached: no new upstream call within the TTLs.
		for range 5 {
			get(env, map[string]string{HeaderAPIKey: flowkerKey})
			get(env, map[string]string{HeaderAPIKey: "wrong"})
		}
		if n := f.calls.Load(); n != 3 {
			t.Fatalf("%d upstream calls with a warm cache", n)
		}
		// Negative answers expire first.
		clock.Advance(11 * time.Second)
		get(env, map[string]string{HeaderAPIKey: flowkerKey})
		get(env, map[string]string{HeaderAPIKey: "wrong"})
		if n := f.calls.Load(); n != 4 {
			t.Fatalf("%d upstream calls after the negative TTL", n)
		}
		clock.Advance(time.Minute)
		get(env, map[string]string{HeaderAPIKey: flowkerKey})
		if n := f.calls.Load(); n != 5 {
			t.Fatalf("%d upstream calls after the TTL", n)
		}
		// A revoked key stops working once its positive entry expires.
		f.set(401, unauthorizedBody)
		clock.Advance(2 * time.Minute)
		if got := get(env, map[string]string{HeaderAPIKey: flowkerKey}); got != 401 {
			t.Fatalf("revoked key: %d", got)
		}
		if strings.Contains(env.logs.String(), flowkerKey) {
			t.Fatal("credential logged")
		}
	})

	t.Run("upstream answers", func(t *testing.T) {
		for _, tc := range []struct {
			status int
			body   string
			want   int
		}{
			{403, "Forbidden", 401},
			{500, `{"code":"FLK-9999"}`, 503},
			{502, "", 503},
			{404, `{"code":404,"title":"request_failed","message":"Cannot GET /v1/audit-events/0"}`, 503},
			{404, "not json", 503},
			{200, `{}`, 503},
		} {
			f, _, env := setup(t)
			f.set(tc.status, tc.body)
			w := env.do(t, http.MethodGet, known, map[string]string{HeaderAPIKey: flowkerKey})
			if w.Code != tc.want {
				t.Errorf("upstream %d %q: %d, want %d", tc.status, tc.body, w.Code, tc.want)
			}
			if tc.want == 503 {
				if e := decodeError(t, w); e.Code != CodeServiceUnavailable {
					t.Errorf("upstream %d: %+v", tc.status, e)
				}
				// Not cached: the next request asks again.
				env.do(t, http.MethodGet, known, map[string]string{HeaderAPIKey: flowkerKey})
				if n := f.calls.Load(); n != 2 {
					t.Errorf("upstream %d: %d calls", tc.status, n)
				}
			}
		}
	})

	t.Run("upstream down", func(t *testing.T) {
		f, _, env := setup(t)
		f.srv.Close()
		w := env.do(t, http.MethodGet, known, map[string]string{HeaderAPIKey: flowkerKey})
		if w.Code != 503 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if strings.Contains(env.logs.String(), flowkerKey) {
			t.Fatal("credential logged")
		}
		if !strings.Contains(env.logs.String(), "unreachable") {
			t.Fatalf("not logged: %s", env.logs)
		}
	})

	t.Run("concurrent callers", func(t *testing.T) {
		_, _, env := setup(t)
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := get(env, map[string]string{HeaderAPIKey: flowkerKey}); got != 200 {
					t.Errorf("status %d", got)
				}
			}()
		}
		wg.Wait()
	})

	if _, err := NewDelegate(DelegateOptions{}); err == nil {
		t.Fatal("no upstream accepted")
	}
	if _, err := NewDelegate(DelegateOptions{Upstream: &url.URL{Path: "/x"}}); err == nil {
		t.Fatal("relative upstream accepted")
	}
}

func TestDelegateCacheBounded(t *testing.T) {
	f := newFakeFlowker(t, "k")
	u, _ := url.Parse(f.srv.URL)
	d, err := NewDelegate(DelegateOptions{Upstream: u, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(HeaderAPIKey, strings.Repeat("x", i+1))
		_ = d.Authenticate(context.Background(), r)
		d.mu.Lock()
		n := len(d.cache)
		d.mu.Unlock()
		if n > 3 {
			t.Fatalf("cache holds %d entries", n)
		}
	}
}

type stubAuth struct {
	err  error
	mode string
}

func (s stubAuth) Authenticate(context.Context, *http.Request) error { return s.err }
func (s stubAuth) AuthMode() string                                  { return s.mode }

func TestAnyOf(t *testing.T) {
	ok := stubAuth{mode: AuthModeAPIKey}
	denied := stubAuth{err: &DeniedError{Message: "no"}, mode: AuthModeAPIKey}
	down := stubAuth{err: errors.Join(ErrAuthUnavailable, errors.New("x")), mode: AuthModeDelegate}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, tc := range []struct {
		name   string
		auths  []Authenticator
		denied bool
		down   bool
		mode   string
	}{
		{"empty", nil, true, false, AuthModeNone},
		{"one ok", []Authenticator{denied, ok}, false, false, AuthModeAPIKey},
		{"ok beats down", []Authenticator{down, ok}, false, false, AuthModeDelegate},
		{"all denied", []Authenticator{denied, denied}, true, false, AuthModeAPIKey},
		{"down and denied is down", []Authenticator{denied, down}, false, true, AuthModeAPIKey},
		{"none configured", []Authenticator{NoneConfigured{}, down}, false, true, AuthModeDelegate},
	} {
		err := AnyOf(tc.auths...).Authenticate(context.Background(), r)
		var d *DeniedError
		if errors.As(err, &d) != tc.denied || errors.Is(err, ErrAuthUnavailable) != tc.down || (err == nil) != (!tc.denied && !tc.down) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if m := AnyOf(tc.auths...).(AuthModer).AuthMode(); m != tc.mode {
			t.Errorf("%s: mode %s", tc.name, m)
		}
	}
	// Static keys or delegation, end to end.
	f := newFakeFlowker(t, "flowker-key")
	u, _ := url.Parse(f.srv.URL)
	keys, _ := NewStaticKeys([]string{testKey})
	del, _ := NewDelegate(DelegateOptions{Upstream: u})
	env := newTestAPI(t, auditapitest.NewStore(), func(o *Options) { o.Auth = AnyOf(keys, del) })
	for key, want := range map[string]int{testKey: 200, "flowker-key": 200, "wrong": 401} {
		if w := env.do(t, http.MethodGet, "/v1/audit-events", map[string]string{HeaderAPIKey: key}); w.Code != want {
			t.Errorf("key %s: %d", key, w.Code)
		}
	}
}
