package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
)

const wfID = "c5160020-5d68-4a05-b984-cef31de6428a"

// echoUpstream answers like Flowker's create route and records what it received.
type echoUpstream struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (u *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(context.Background()))
	u.body = append(u.body, b)
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "yes")
	switch {
	case r.Method == http.MethodPost && strings.EqualFold(strings.TrimRight(r.URL.EscapedPath(), "/"), "/v1/workflows"):
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"workflowId":%q,"version":"1.0.0","status":"draft","createdAt":"2026-11-24T00:00:00Z"}`, wfID)
	case r.Method == http.MethodGet:
		fmt.Fprintf(w, `{"items":[],"nextCursor":"","hasMore":false}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"code":404,"title":"request_failed","message":"Cannot %s %s"}`, r.Method, r.URL.EscapedPath())
	}
}

func (u *echoUpstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// rawRequest sends a request line verbatim (Go's client would clean the path).
func rawRequest(t *testing.T, addr, method, target, body string) (int, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: k-123456789\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, target, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

// TestOddPathSpellings: every spelling Flowker executes is audited under its rule; spellings
// Flowker does not route are still recorded (unclassified), so nothing mutating escapes.
func TestOddPathSpellings(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up)
	tests := []struct {
		target, eventType, upstreamPath string
	}{
		{"/v1/workflows", chain.WorkflowCreated, "/v1/workflows"},
		{"/v1/workflows/", chain.WorkflowCreated, "/v1/workflows/"},
		{"/V1/Workflows/", chain.WorkflowCreated, "/V1/Workflows/"},
		{"/v1/WORKFLOWS//", chain.WorkflowCreated, "/v1/WORKFLOWS//"},
		{"//v1/workflows", chain.UnclassifiedMutation, "//v1/workflows"},
		{"/v1//workflows", chain.UnclassifiedMutation, "/v1//workflows"},
		{"/v1/work%66lows", chain.UnclassifiedMutation, "/v1/work%66lows"},
		{"/v1/workflows%2F", chain.UnclassifiedMutation, "/v1/workflows%2F"},
		{"/v1/./workflows", chain.UnclassifiedMutation, "/v1/./workflows"},
		{"/v1/workflows?x=%00", chain.WorkflowCreated, "/v1/workflows"},
	}
	for i, tc := range tests {
		code, hdr := rawRequest(t, h.front.URL, "POST", tc.target, `{"name":"n"}`)
		if code == 0 || hdr.Get("X-Audit-Id") == "" {
			t.Errorf("%s: status %d, no X-Audit-Id", tc.target, code)
			continue
		}
		evs := h.events()
		if len(evs) != i+1 {
			t.Fatalf("%s: %d events after %d requests", tc.target, len(evs), i+1)
		}
		if e := evs[i]; e.EventType != tc.eventType || e.EventID != hdr.Get("X-Audit-Id") {
			t.Errorf("%s: event %s (%s), want %s", tc.target, e.EventType, e.EventID, tc.eventType)
		}
		if got := up.last().URL.EscapedPath(); got != tc.upstreamPath {
			t.Errorf("%s: upstream saw path %q, want it unchanged %q", tc.target, got, tc.upstreamPath)
		}
	}
	if got := testutil.ToFloat64(h.proxy.m.Unclassified.WithLabelValues("POST")); got != 5 {
		t.Errorf("unclassified_mutations_total{POST} = %v, want 5", got)
	}
}

func TestReadsPassUnbufferedAndUnaudited(t *testing.T) {
	// The upstream streams a long body slowly; the client must see the first chunk before the end.
	first := make(chan struct{})
	release := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		close(first)
		<-release
		fmt.Fprint(w, "data: second\n\n")
	})
	h := newHarness(t, up)
	resp := do(t, "GET", h.front.URL+"/v1/executions?limit=5", nil, nil)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first chunk: %q %v", line, err)
	}
	<-first
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "second") {
		t.Fatalf("rest: %q", rest)
	}
	if n := len(h.events()); n != 0 || resp.Header.Get("X-Audit-Id") != "" {
		t.Fatalf("a read produced %d events", n)
	}
}

func TestPassesEverythingThroughUnchanged(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up)
	big := bytes.Repeat([]byte(`{"name":"x","pad":"`+strings.Repeat("y", 1000)+`"}`), 1)
	resp := do(t, "POST", h.front.URL+"/v1/workflows", bytes.NewReader(big), map[string]string{
		"Content-Type": "application/json", "X-Custom": "kept", "Connection": "keep-alive, X-Hop", "X-Hop": "dropped",
		"Idempotency-Key": "abc", "X-Request-Id": "client-id-1",
	})
	r := up.last()
	if r.Header.Get("X-Custom") != "kept" || r.Header.Get("Idempotency-Key") != "abc" || r.Header.Get("X-Request-Id") != "client-id-1" {
		t.Fatalf("end-to-end headers not forwarded: %v", r.Header)
	}
	if r.Header.Get("X-Hop") != "" {
		t.Fatal("a hop-by-hop header (listed in Connection) was forwarded")
	}
	if !bytes.Equal(up.body[len(up.body)-1], big) {
		t.Fatal("request body changed")
	}
	if resp.StatusCode != 201 || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("response: %d %v", resp.StatusCode, resp.Header)
	}
	e := h.events()[0]
	var ctx map[string]any
	_ = json.Unmarshal(e.Context, &ctx)
	if ctx["clientRequestId"] != "client-id-1" || ctx["requestId"] != e.EventID || resp.Header.Get("X-Audit-Id") != e.EventID {
		t.Fatalf("ids: ctx %v, header %s", ctx["clientRequestId"], resp.Header.Get("X-Audit-Id"))
	}
}

func TestForwardingHeadersRebuiltNotTrusted(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up)
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), map[string]string{
		"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Real-Ip": "6.6.6.6",
		"X-Forwarded-User": "admin",
	})
	_ = resp
	r := up.last()
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For %q: must be rebuilt from the peer only", got)
	}
	if r.Header.Get("X-Forwarded-Host") == "evil.example" || r.Header.Get("X-Forwarded-Proto") == "https" {
		t.Fatalf("client forwarding headers kept: %v", r.Header)
	}
	e := h.events()[0]
	if e.Actor.IPAddress != "127.0.0.1" || e.Actor.ID != "anonymous" {
		t.Fatalf("spoofed headers changed the actor: %+v", e.Actor)
	}
}

func TestTrustedProxyForwardingChainKept(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up, func(o *Options) {
		id, err := newTestIdentity([]string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		o.Identity = id
	})
	do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), map[string]string{
		"X-Forwarded-For": "6.6.6.6, 198.51.100.4", "X-Forwarded-User": "alice",
	})
	if got := up.last().Header.Get("X-Forwarded-For"); got != "6.6.6.6, 198.51.100.4, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For %q", got)
	}
	e := h.events()[0]
	if e.Actor.IPAddress != "198.51.100.4" || e.Actor.Type != chain.ActorUser || e.Actor.ID != "alice" {
		t.Fatalf("actor %+v", e.Actor)
	}
}

func TestUpstreamDown(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up)
	h.upstream.Close()
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), map[string]string{"Content-Type": "application/json"})
	b, _ := io.ReadAll(resp.Body)
	var body map[string]string
	if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(b, &body) != nil || body["code"] != "FLKAUD-0502" || body["title"] == "" {
		t.Fatalf("upstream down: %d %s", resp.StatusCode, b)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Result != chain.ResultFailed || resp.Header.Get("X-Audit-Id") != evs[0].EventID {
		t.Fatalf("the failed attempt must be audited: %+v", evs)
	}
	var ctx map[string]any
	_ = json.Unmarshal(evs[0].Context, &ctx)
	if ctx["status"] != float64(502) || ctx["upstreamError"] == nil {
		t.Fatalf("context: %v", ctx)
	}
	// Reads get the same gateway answer, without an event.
	resp = do(t, "GET", h.front.URL+"/v1/workflows", nil, nil)
	if resp.StatusCode != http.StatusBadGateway || len(h.events()) != 1 {
		t.Fatalf("read with upstream down: %d", resp.StatusCode)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	block := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	h := newHarness(t, up, func(o *Options) {
		tr := NewTransport(config.Upstream{DialTimeout: config.Duration(time.Second), ResponseHeaderTimeout: config.Duration(200 * time.Millisecond), MaxIdleConns: 4})
		o.Transport = tr
	})
	t.Cleanup(func() { close(block) }) // runs before the harness closes its servers
	resp := do(t, "DELETE", h.front.URL+"/v1/workflows/"+wfID, nil, nil)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].EventType != chain.WorkflowDeleted || evs[0].Result != chain.ResultFailed || evs[0].ResourceID != wfID {
		t.Fatalf("events %+v", evs)
	}
}

func TestFailClosedRefusesBeforeFlowker(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up, func(o *Options) { o.Journal = stubJournal{accept: journal.ErrFull} })
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if up.last() != nil {
		t.Fatal("the refused request reached Flowker")
	}
	if got := testutil.ToFloat64(h.proxy.m.Refused.WithLabelValues("journal_full")); got != 1 {
		t.Fatalf("refused_total = %v", got)
	}
	// Reads still flow.
	if resp := do(t, "GET", h.front.URL+"/v1/workflows", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("read refused: %d", resp.StatusCode)
	}
}

func TestFailOpenCountsTheLoss(t *testing.T) {
	up := &echoUpstream{}
	reg := prometheus.NewRegistry()
	jm := journal.NewMetrics(reg)
	h := newHarness(t, up, func(o *Options) {
		o.Journal = stubJournal{accept: journal.ErrFull, appendErr: journal.ErrFull, intendErr: journal.ErrFull}
		o.FailMode = config.FailOpen
		o.Lost = jm.EventsLost
	})
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), nil)
	if resp.StatusCode != http.StatusCreated || up.last() == nil {
		t.Fatalf("fail_open must forward: %d", resp.StatusCode)
	}
	if got := testutil.ToFloat64(jm.EventsLost.WithLabelValues("journal_full")); got != 1 {
		t.Fatalf("events_lost_total = %v", got)
	}
}

func TestJournalFailureAfterForwardingFailsClosed(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up, func(o *Options) { o.Journal = stubJournal{appendErr: journal.ErrFailed} })
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(`{"name":"x"}`), nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "FLKAUD-0500") || !strings.Contains(string(b), "201") {
		t.Fatalf("a response without a durable record must not be released as a success: %d %s", resp.StatusCode, b)
	}
}

type stubJournal struct {
	accept    error
	appendErr error
	intendErr error
}

func (s stubJournal) Append(context.Context, journal.Draft) (chain.Event, error) {
	return chain.Event{}, s.appendErr
}
func (s stubJournal) Accepting() error                             { return s.accept }
func (s stubJournal) Intend(context.Context, journal.Intent) error { return s.intendErr }
func (s stubJournal) Resolve(context.Context, string) error        { return nil }
func (s stubJournal) Complete(context.Context, journal.Draft, func(chain.Event, error)) error {
	return journal.ErrNotCompletable // appended with Append, as it stubs
}

func TestOversizedAndMalformedBodies(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up, func(o *Options) { o.MaxBodyBytes = 1024; o.MaxHoldBytes = 64 << 10 })
	// 3 MiB JSON body: streamed through intact, captured capped, digest over everything.
	big := []byte(`{"name":"big","pad":"` + strings.Repeat("z", 3<<20) + `"}`)
	resp := do(t, "POST", h.front.URL+"/v1/workflows", bytes.NewReader(big), map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != 201 || !bytes.Equal(up.body[len(up.body)-1], big) {
		t.Fatalf("big body: %d, forwarded intact: %v", resp.StatusCode, bytes.Equal(up.body[len(up.body)-1], big))
	}
	e := h.events()[0]
	var ctx struct {
		Request struct {
			Bytes     int64          `json:"bytes"`
			Digest    string         `json:"hmacSha256"`
			Truncated bool           `json:"truncated"`
			Body      map[string]any `json:"body"`
		} `json:"request"`
	}
	if err := json.Unmarshal(e.Context, &ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Request.Bytes != int64(len(big)) || ctx.Request.Digest != capture.Digest(testDigestKey, big) || !ctx.Request.Truncated || len(e.Context) > 8<<10 {
		t.Fatalf("big body context: bytes %d digest %s truncated %v (context %d bytes)", ctx.Request.Bytes, ctx.Request.Digest, ctx.Request.Truncated, len(e.Context))
	}
	// Malformed JSON, a non-JSON body and an empty body are all forwarded and recorded.
	for _, b := range []string{`{"name": "oops`, "name=x&password=hunter2", ""} {
		resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(b), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.StatusCode != 201 {
			t.Fatalf("%q: %d", b, resp.StatusCode)
		}
	}
	evs := h.events()
	if len(evs) != 4 {
		t.Fatalf("%d events", len(evs))
	}
	if bytes.Contains(evs[2].Context, []byte("hunter2")) {
		t.Fatal("a non-JSON body leaked into the event")
	}
}

func TestClientDisconnectMidBody(t *testing.T) {
	got := make(chan error, 1)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
		w.WriteHeader(201)
	})
	h := newHarness(t, up)
	c, err := net.Dial("tcp", strings.TrimPrefix(h.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\":\"half")
	time.Sleep(50 * time.Millisecond) // let the proxy start forwarding
	c.Close()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("the upstream read a complete body although the client sent half of it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never saw the request end")
	}
	// The attempt is recorded as failed.
	deadline := time.Now().Add(10 * time.Second)
	for len(h.events()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Result != chain.ResultFailed {
		t.Fatalf("events after a client disconnect: %+v", evs)
	}
}

// A client that sends the whole request and leaves before the response does not cancel the
// change: Flowker applies it, and the event records what Flowker answered (SUCCESS, the new
// id), not a failed attempt.
func TestClientGoneAfterFullRequestRecordsTheRealOutcome(t *testing.T) {
	release := make(chan struct{})
	applied := make(chan struct{}, 1)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		<-release // Flowker is still working when the client hangs up
		applied <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"workflowId":%q,"name":"slow","status":"draft"}`, wfID)
	})
	h := newHarness(t, up)
	c, err := net.Dial("tcp", strings.TrimPrefix(h.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"name":"slow"}`
	fmt.Fprintf(c, "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	time.Sleep(100 * time.Millisecond) // the request reaches the upstream
	c.Close()
	time.Sleep(100 * time.Millisecond) // the server notices the client left
	close(release)
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream call was cancelled with the client")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(h.events()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Result != chain.ResultSuccess || evs[0].ResourceID != wfID {
		t.Fatalf("events after the client left: %+v", evs)
	}
}

func TestLocalRoutesAreNotForwarded(t *testing.T) {
	up := &echoUpstream{}
	h := newHarness(t, up, func(o *Options) {
		o.Local = []Local{{Name: "audit_api", Match: func(r *http.Request) bool { return strings.HasPrefix(strings.ToLower(r.URL.Path), "/v1/audit-events") },
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })}}
	})
	if resp := do(t, "GET", h.front.URL+"/V1/audit-events", nil, nil); resp.StatusCode != 299 || up.last() != nil {
		t.Fatalf("local route: %d, forwarded: %v", resp.StatusCode, up.last() != nil)
	}
}

// A status read of an execution nobody awaits is streamed as is: not read for the observer.
func TestUnwatchedExecutionStatusIsNotRead(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"executionId":%q,"status":"completed"}`, wfID)
	})
	h := newHarness(t, up)
	h.observer.idle = true
	resp := do(t, "GET", h.front.URL+"/v1/executions/"+wfID, nil, nil)
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if s := h.observer.seenList(); len(s) != 0 {
		t.Fatalf("observer saw %v", s)
	}
}

func TestExecutionStatusObservedInPassing(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"executionId":%q,"status":"completed"}`, wfID)
	})
	h := newHarness(t, up)
	resp := do(t, "GET", h.front.URL+"/v1/executions/"+strings.ToUpper(wfID), nil, nil)
	_, _ = io.ReadAll(resp.Body)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.observer.seenList()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := h.observer.seenList(); len(s) != 1 || s[0] != wfID {
		t.Fatalf("observer saw %v", s)
	}
}

func newTestIdentity(trusted []string) (*identity.Resolver, error) {
	return identity.New(context.Background(), identity.Options{FingerprintKey: testFingerprintKey,
		TrustedProxies: trusted, TrustedHeader: "X-Forwarded-User"})
}

// The proxy must not request compression on the client's behalf (the Transport would then
// decompress and change the response).
func TestNoCompressionAddedOrRemoved(t *testing.T) {
	var sawAE []string
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAE = append(sawAE, r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	h := newHarness(t, up)
	req, _ := http.NewRequest("GET", h.front.URL+"/v1/workflows", nil)
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	do(t, "GET", h.front.URL+"/v1/workflows", nil, map[string]string{"Accept-Encoding": "br"})
	if len(sawAE) != 2 || sawAE[0] != "" || sawAE[1] != "br" {
		t.Fatalf("upstream saw Accept-Encoding %q, want the client's own", sawAE)
	}
}

// When the bytes held by audited requests in flight reach capture.max_hold_total, bodies pass
// through unchanged and are captured in part (the event says truncated), and every held byte is
// given back once the exchange ends.
func TestHoldBudgetCutsCapturesNotBodies(t *testing.T) {
	respBody := `{"workflowId":"` + wfID + `","pad":"` + strings.Repeat("r", 20<<10) + `"}`
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, respBody)
	})
	h := newHarness(t, up, func(o *Options) { o.MaxHoldTotal = 4 << 10 })
	reqBody := `{"name":"big","pad":"` + strings.Repeat("q", 20<<10) + `"}`
	resp := do(t, "POST", h.front.URL+"/v1/workflows", strings.NewReader(reqBody), map[string]string{"Content-Type": "application/json"})
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 || string(got) != respBody {
		t.Fatalf("status %d, %d of %d body bytes, %v", resp.StatusCode, len(got), len(respBody), err)
	}
	evs := h.events()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	var ctx struct {
		Request  struct{ Truncated bool } `json:"request"`
		Response struct{ Truncated bool } `json:"response"`
	}
	if err := json.Unmarshal(evs[0].Context, &ctx); err != nil {
		t.Fatal(err)
	}
	if !ctx.Request.Truncated {
		t.Errorf("request capture not marked truncated: %s", evs[0].Context)
	}
	if h.proxy.budget.InUse() != 0 || testutil.ToFloat64(h.proxy.m.HeldBytes) != 0 {
		t.Errorf("held bytes after the exchange: %d (gauge %v)", h.proxy.budget.InUse(), testutil.ToFloat64(h.proxy.m.HeldBytes))
	}
}
