package watcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// tokenEndpoint is an OAuth2 token endpoint (client credentials grant) that issues tok-1,
// tok-2, ... with the given lifetime, checking the client's id, secret and scope.
type tokenEndpoint struct {
	mu       sync.Mutex
	secret   string
	lifetime time.Duration
	issued   []string
	scopes   []string
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	if id != "watcher" || secret != e.secret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	tok := fmt.Sprintf("tok-%d", len(e.issued)+1)
	e.issued = append(e.issued, tok)
	e.scopes = append(e.scopes, r.Form.Get("scope"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(e.lifetime.Seconds())})
}

func (e *tokenEndpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.issued)
}

func authOf(t *testing.T, c Credentials) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err := c.Apply(context.Background(), req); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return req.Header.Get("Authorization")
}

func TestOAuth2RenewsBeforeExpiry(t *testing.T) {
	ep := &tokenEndpoint{secret: "s1", lifetime: 100 * time.Second}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := NewOAuth2ClientCredentials(OAuth2Options{TokenURL: srv.URL, ClientID: "watcher", ClientSecretFile: secretFile,
		Scopes: []string{"executions:read"}, RefreshBefore: time.Minute, Now: clock})

	steps := []struct {
		name    string
		advance time.Duration
		rotate  string // new client secret, in the file and at the endpoint
		invalid bool
		want    string
	}{
		{"first use fetches", 0, "", false, "Bearer tok-1"},
		{"reused while fresh", 50 * time.Second, "", false, "Bearer tok-1"},
		// Lifetime 100 s: renewal a quarter of it (25 s) before expiry, not refresh_before (60 s).
		{"still fresh 26 s before expiry", 24 * time.Second, "", false, "Bearer tok-1"},
		{"renewed 24 s before expiry", 2 * time.Second, "", false, "Bearer tok-2"},
		{"a 401 invalidates; the rotated secret file is read", time.Second, "s2", true, "Bearer tok-3"},
	}
	for _, s := range steps {
		advance(s.advance)
		if s.rotate != "" {
			ep.mu.Lock()
			ep.secret = s.rotate
			ep.mu.Unlock()
			if err := os.WriteFile(secretFile, []byte(s.rotate), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if s.invalid {
			c.Invalidate()
		}
		if got := authOf(t, c); got != s.want {
			t.Fatalf("%s: Authorization %q, want %q", s.name, got, s.want)
		}
	}
	if ep.scopes[0] != "executions:read" {
		t.Errorf("scope %q", ep.scopes[0])
	}
	// A refused client is an error, not a request without credentials.
	ep.mu.Lock()
	ep.secret = "other"
	ep.mu.Unlock()
	c.Invalidate()
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err := c.Apply(context.Background(), req); err == nil || req.Header.Get("Authorization") != "" {
		t.Fatalf("refused client: err %v, header %q", err, req.Header.Get("Authorization"))
	}
}

func TestTokenFileIsReReadWhenItChanges(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write("jwt-aaaa\n", base)
	f := NewTokenFile(p)
	if got := authOf(t, f); got != "Bearer jwt-aaaa" {
		t.Fatalf("first read: %q", got)
	}
	write("jwt-bbbb\n", base.Add(time.Minute)) // the kubelet rotated it
	if got := authOf(t, f); got != "Bearer jwt-bbbb" {
		t.Fatalf("after rotation: %q", got)
	}
	write("jwt-cccc\n", base.Add(time.Minute)) // same size and time: only a 401 makes it re-read
	if got := authOf(t, f); got != "Bearer jwt-bbbb" {
		t.Fatalf("unchanged stat: %q", got)
	}
	f.Invalidate()
	if got := authOf(t, f); got != "Bearer jwt-cccc" {
		t.Fatalf("after Invalidate: %q", got)
	}
	write("  \n", base.Add(2*time.Minute))
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err := f.Apply(context.Background(), req); err == nil {
		t.Fatal("an empty token file is an error")
	}
}

// A poll answered 401 is retried once with a new token and succeeds.
func TestPollRetriesOnceOn401WithANewToken(t *testing.T) {
	ep := &tokenEndpoint{secret: "s", lifetime: time.Hour}
	tsrv := httptest.NewServer(ep)
	defer tsrv.Close()
	var mu sync.Mutex
	var seen []string
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") == "Bearer tok-1" { // revoked early by the issuer
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"executionId": execID, "workflowId": "wf", "status": "completed", "startedAt": "2026-11-24T00:00:00Z"})
	})
	srv := httptest.NewServer(up)
	defer srv.Close()
	j := openJournal(t)
	started(t, j, execID)
	u := mustURL(t, srv.URL)
	w := New(Options{Upstream: u, Journal: j, Interval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond,
		Credentials: NewOAuth2ClientCredentials(OAuth2Options{TokenURL: tsrv.URL, ClientID: "watcher", ClientSecret: "s"})})
	st, code, err := w.fetch(context.Background(), execID)
	if err != nil || code != http.StatusOK || !st.terminal() {
		t.Fatalf("fetch: %+v %d %v", st, code, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "Bearer tok-1" || seen[1] != "Bearer tok-2" || ep.count() != 2 {
		t.Fatalf("polls %v, tokens issued %d: want tok-1 refused then tok-2", seen, ep.count())
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
