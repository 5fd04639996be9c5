package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// accessManager plays an OAuth2 token endpoint (client credentials) and the Access Manager
// behind Flowker's plugin auth: it issues short-lived tokens, expires them, can revoke one
// early, and records what the fake Flowker was shown.
type accessManager struct {
	mu       sync.Mutex
	secret   string
	lifetime time.Duration
	expiry   map[string]time.Time
	revoked  map[string]bool
	issued   []string
	// polls are the tokens of the watcher's GET /v1/executions/{id} requests, with the verdict.
	polls []pollSeen
}

type pollSeen struct {
	token    string
	accepted bool
	why      string
}

const clientToken = "client-token-long-lived" // the test client's own token

func (m *accessManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	if !ok {
		id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
	}
	if id != "flowker-audit-watcher" || secret != m.secret || r.Form.Get("scope") != "executions:read" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	tok := fmt.Sprintf("watcher-token-%d", len(m.issued)+1)
	m.issued = append(m.issued, tok)
	m.expiry[tok] = time.Now().Add(m.lifetime)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(m.lifetime.Seconds())})
}

// authorize is the fake Flowker's BearerAuth.
func (m *accessManager) authorize(tok string) bool {
	if tok == clientToken {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, known := m.expiry[tok]
	p := pollSeen{token: tok, accepted: true}
	switch {
	case !known:
		p.accepted, p.why = false, "unknown"
	case m.revoked[tok]:
		p.accepted, p.why = false, "revoked"
	case time.Now().After(exp):
		p.accepted, p.why = false, "expired"
	}
	m.polls = append(m.polls, p)
	return p.accepted
}

func (m *accessManager) revokeNewest() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	tok := m.issued[len(m.issued)-1]
	m.revoked[tok] = true
	return tok
}

// TestWatcherOAuth2AgainstFlowkerAccessManager: Flowker in Access Manager mode accepts bearer
// tokens only and expires them; the watcher gets tokens with OAuth2 client credentials from a
// local token endpoint, renews them, retries a poll refused with 401 once with a new token, and
// picks up a rotated client secret from its file. Every execution's outcome is learnt.
func TestWatcherOAuth2AgainstFlowkerAccessManager(t *testing.T) {
	am := &accessManager{secret: "secret-1", lifetime: 2 * time.Second, expiry: map[string]time.Time{}, revoked: map[string]bool{}}
	tokSrv := httptest.NewServer(am)
	defer tokSrv.Close()
	fake := fakeflowker.New(fakeflowker.Options{BearerAuth: am.authorize, ExecutionDelay: 1500 * time.Millisecond})
	fsrv := httptest.NewServer(fake)
	t.Cleanup(func() { fsrv.Close(); fake.Close() })
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte("secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.StartSidecar(t, fsrv.URL, testenv.Options{Config: func(c *config.Config) {
		c.Watcher.APIKey = ""
		c.Watcher.OAuth2 = config.WatcherOAuth2{TokenURL: tokSrv.URL, ClientID: "flowker-audit-watcher",
			ClientSecretFile: secretFile, Scopes: []string{"executions:read"}, RefreshBefore: config.Duration(time.Minute)}
	}})
	bearer := []string{"Authorization", "Bearer " + clientToken}

	// Without a token Flowker answers 401 "Missing Token", as with PLUGIN_AUTH_ENABLED=true.
	if r := testenv.Do(t, "GET", fsrv.URL+"/v1/workflows", nil, nil); r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "Missing Token") {
		t.Fatalf("fake Flowker without a token: %d %s", r.Status, r.Body)
	}
	r := env.Flowker("POST", "/v1/workflows", map[string]any{"name": "oauth2", "nodes": []any{map[string]any{"id": "t", "type": "trigger",
		"data": map[string]any{"triggerType": "webhook", "path": "/w/oauth2", "method": "POST"}}}}, bearer...)
	var wf struct {
		WorkflowID string `json:"workflowId"`
	}
	r.JSON(t, &wf)
	if r := env.Flowker("POST", "/v1/workflows/"+wf.WorkflowID+"/activate", nil, bearer...); r.Status != http.StatusOK {
		t.Fatalf("activate: %d %s", r.Status, r.Body)
	}

	outcome := func(execID string) bool {
		for _, e := range env.AllEvents() {
			if e.ResourceID == execID && e.EventType == chain.ExecutionCompleted {
				return true
			}
		}
		return false
	}
	steps := []struct {
		name   string
		before func()
	}{
		{"first token", nil},
		{"the current token is revoked early: 401, then a new token", func() { t.Logf("revoked %s", am.revokeNewest()) }},
		{"the client secret is rotated in its file", func() {
			am.mu.Lock()
			am.secret = "secret-2"
			am.mu.Unlock()
			if err := os.WriteFile(secretFile, []byte("secret-2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Logf("rotated the client secret; revoked %s so that a new token is needed", am.revokeNewest())
		}},
		{"tokens keep expiring while executions run", nil},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		r := env.Flowker("POST", "/v1/workflows/"+wf.WorkflowID+"/executions", map[string]any{"inputData": map[string]any{"n": i}},
			append([]string{"Idempotency-Key", fmt.Sprintf("oauth2-%d", i)}, bearer...)...)
		var ex struct {
			ExecutionID string `json:"executionId"`
		}
		r.JSON(t, &ex)
		if r.Status != http.StatusCreated || ex.ExecutionID == "" {
			t.Fatalf("%s: start: %d %s", s.name, r.Status, r.Body)
		}
		testenv.Eventually(t, 30*time.Second, s.name+": EXECUTION_COMPLETED learnt by the watcher", func() bool { return outcome(ex.ExecutionID) })
	}

	am.mu.Lock()
	defer am.mu.Unlock()
	var refused, revokedRefusals int
	for i, p := range am.polls {
		if p.accepted {
			continue
		}
		refused++
		if p.why == "revoked" {
			revokedRefusals++
		}
		// A refused poll is retried once, at once, with a token Flowker accepts.
		if i+1 >= len(am.polls) || am.polls[i+1].token == p.token || !am.polls[i+1].accepted {
			t.Errorf("poll %d with %s was refused (%s) and not followed by an accepted poll with a new token: %+v", i, p.token, p.why, am.polls[i:min(i+3, len(am.polls))])
		}
	}
	if revokedRefusals < 2 {
		t.Errorf("%d polls refused for a revoked token, want at least 2 (one per revocation)", revokedRefusals)
	}
	if len(am.issued) < 3 {
		t.Errorf("%d tokens issued, want at least 3 (first, after each revocation)", len(am.issued))
	}
	t.Logf("%d tokens issued, %d polls, %d refused (%d revoked, the rest expired in transit)", len(am.issued), len(am.polls), refused, revokedRefusals)
}
