package fiberdiff

// The hostile-client suite: one test per attack of issue 14 (and per variant found while fixing
// them), each asserting the exact event, or the refusal, that must result. The upstream is the
// real Fiber app unless the attack needs an upstream that behaves in a particular way.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

const apiKey = "hostile-suite-api-key"

func startApp(t *testing.T) *App {
	t.Helper()
	app, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	return app
}

var reqSeq atomic.Int64

// send makes one request through the sidecar and returns its status and X-Request-Id.
func send(t *testing.T, sc *sidecar, method, path string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	id := fmt.Sprintf("hostile-%d", reqSeq.Add(1))
	req, err := http.NewRequest(method, sc.front.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", id)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, id
}

var jsonKey = map[string]string{"Content-Type": "application/json", "X-API-Key": apiKey}

// eventCtx is the part of an event's context the suite asserts on.
type eventCtx struct {
	Status        int      `json:"status"`
	Rule          string   `json:"rule"`
	AmbiguousKeys []string `json:"ambiguousKeys"`
	ValuesUnread  string   `json:"valuesUnread"`
	UpstreamError string   `json:"upstreamError"`
	Request       body     `json:"request"`
	Response      body     `json:"response"`
	Query         map[string][]string
}

type body struct {
	Bytes       *int64          `json:"bytes"`
	BytesAtMost int64           `json:"bytesAtMost"`
	Digest      string          `json:"hmacSha256"`
	SHA256      string          `json:"sha256"`
	Truncated   bool            `json:"truncated"`
	Complete    *bool           `json:"complete"`
	Body        json.RawMessage `json:"body"`
}

func mustEvent(t *testing.T, sc *sidecar, id string) (chain.Event, eventCtx, map[string]string) {
	t.Helper()
	ev, ok := sc.eventsByRequestID(t)[id]
	if !ok {
		t.Fatalf("no event for request %s", id)
	}
	var c eventCtx
	if err := json.Unmarshal(ev.Context, &c); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	return ev, c, meta
}

// Attack 1 and its variants: the event says what Flowker stored.
func TestHostileEventSaysWhatFlowkerStored(t *testing.T) {
	app := startApp(t)
	sc := startSidecar(t, app.URL)
	for _, tc := range []struct {
		name, path, ct, body, key, want string
		ambiguous                       []string
	}{
		{"duplicate key", "/v1/workflows", "application/json", `{"name":"AUDIT-SEES-THIS","name":"FLOWKER-STORES-THIS"}`, "workflow.name", "FLOWKER-STORES-THIS", []string{"name"}},
		{"case-colliding key", "/v1/workflows", "application/json", `{"name":"AUDIT-SEES-THIS","NAME":"FLOWKER-STORES-THIS"}`, "workflow.name", "FLOWKER-STORES-THIS", []string{"NAME"}},
		{"escaped key", "/v1/workflows", "application/json", `{"name":"AUDIT-SEES-THIS","n\u0061me":"FLOWKER-STORES-THIS"}`, "workflow.name", "FLOWKER-STORES-THIS", []string{"name"}},
		{"null after the value", "/v1/workflows", "application/json", `{"name":"FLOWKER-STORES-THIS","name":null}`, "workflow.name", "FLOWKER-STORES-THIS", []string{"name"}},
		{"form body Flowker accepts", "/v1/workflows", "application/x-www-form-urlencoded", `name=AUDIT-SEES-THIS&name=FLOWKER+STORES+THIS`, "workflow.name", "FLOWKER STORES THIS", []string{"name"}},
		{"vendor JSON type", "/v1/workflows", "application/vnd.flowker+json", `{"name":"FLOWKER-STORES-THIS"}`, "workflow.name", "FLOWKER-STORES-THIS", nil},
		{"response wins (provider config)", "/v1/provider-configurations", "application/json", `{"name":"a","Name":"FLOWKER-STORES-THIS","providerId":"p","config":{}}`, "provider_config.name", "FLOWKER-STORES-THIS", []string{"Name"}},
		{"template params are a map (exact keys)", "/v1/workflows/from-template", "application/json", `{"templateId":"t","params":{"WorkflowName":"AUDIT-SEES-THIS","workflowName":"FLOWKER-STORES-THIS"}}`, "workflow.name", "FLOWKER-STORES-THIS", []string{"params.workflowName"}},
		// Attack 9: names are kept as sent.
		{"spaces kept", "/v1/provider-configurations", "application/json", `{"name":"  pc-1  ","providerId":"p","config":{}}`, "provider_config.name", "  pc-1  ", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, id := send(t, sc, "POST", tc.path, map[string]string{"Content-Type": tc.ct, "X-API-Key": apiKey}, tc.body)
			hit, _ := app.Hit(id)
			ev, c, meta := mustEvent(t, sc, id)
			if st != 201 || ev.Result != chain.ResultSuccess {
				t.Fatalf("status %d, result %s", st, ev.Result)
			}
			if meta[tc.key] != tc.want || (hit.Name != tc.want && hit.WFName != tc.want) {
				t.Fatalf("%s = %q, Fiber bound %q/%q, want %q", tc.key, meta[tc.key], hit.Name, hit.WFName, tc.want)
			}
			if fmt.Sprint(c.AmbiguousKeys) != fmt.Sprint(tc.ambiguous) {
				t.Fatalf("ambiguousKeys = %q, want %q", c.AmbiguousKeys, tc.ambiguous)
			}
		})
	}
	// Two names that differ only in spaces stay two names.
	_, a := send(t, sc, "POST", "/v1/workflows", jsonKey, `{"name":"pc-1"}`)
	_, b := send(t, sc, "POST", "/v1/workflows", jsonKey, `{"name":" pc-1"}`)
	_, _, ma := mustEvent(t, sc, a)
	_, _, mb := mustEvent(t, sc, b)
	if ma["workflow.name"] == mb["workflow.name"] {
		t.Fatalf("names differing in spaces collapsed: %q", ma["workflow.name"])
	}
	// A body Flowker refuses (text/plain) is a FAILED attempt with no name claimed.
	st, id := send(t, sc, "POST", "/v1/workflows", map[string]string{"Content-Type": "text/plain", "X-API-Key": apiKey}, `{"name":"x"}`)
	ev, _, meta := mustEvent(t, sc, id)
	if st != 400 || ev.Result != chain.ResultFailed || meta["workflow.name"] != "" {
		t.Fatalf("text/plain: status %d, %s, metadata %v", st, ev.Result, meta)
	}
	// Form keys spelled two ways: Fiber's choice depends on map order, so the event says it cannot.
	_, id = send(t, sc, "POST", "/v1/workflows", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-API-Key": apiKey}, `name=a&NAME=b`)
	_, c, meta := mustEvent(t, sc, id)
	if meta["workflow.name"] != "" || c.ValuesUnread == "" {
		t.Fatalf("ambiguous form: metadata %v, valuesUnread %q", meta, c.ValuesUnread)
	}
}

// Attack 2: the dictionary attack on a stored digest fails; the operator's audit-hash succeeds.
func TestHostileDictionaryAttackOnDigestFails(t *testing.T) {
	app := startApp(t)
	sc := startSidecar(t, app.URL)
	secretBody := `{"name":"ledger","providerId":"midaz","config":{"api_key":"summer2024"}}`
	_, id := send(t, sc, "POST", "/v1/provider-configurations", jsonKey, secretBody)
	_, c, _ := mustEvent(t, sc, id)
	if c.Request.SHA256 != "" || c.Request.Digest == "" {
		t.Fatalf("request digest: sha256 %q, hmacSha256 %q", c.Request.SHA256, c.Request.Digest)
	}
	if c.Request.Bytes != nil || c.Request.BytesAtMost < int64(len(secretBody)) || c.Request.BytesAtMost%64 != 0 {
		t.Fatalf("exact size of a redacted body given: bytes %v, bytesAtMost %d", c.Request.Bytes, c.Request.BytesAtMost)
	}
	if !strings.Contains(string(c.Request.Body), `"api_key": "[REDACTED]"`) {
		t.Fatalf("body: %s", c.Request.Body)
	}
	// The attacker reads the event and knows everything but the key: the rendered body gives the
	// structure. Each guess is tried as a plain SHA-256 (what events used to carry) and as an
	// HMAC under keys an attacker could guess.
	words := []string{"password", "123456", "winter2023", "letmein", "summer2024", "qwerty"}
	for _, w := range words {
		guess := strings.Replace(secretBody, "summer2024", w, 1)
		plain := sha256.Sum256([]byte(guess))
		for _, d := range []string{hex.EncodeToString(plain[:]), capture.Digest(nil, []byte(guess)), capture.Digest([]byte("flowker-audit"), []byte(guess))} {
			if d == c.Request.Digest {
				t.Fatalf("the dictionary recovered the key %q from the stored digest", w)
			}
		}
	}
	// The operator, who holds the key, can check a known value (flowker-audit audit-hash).
	if capture.Digest(testDigestKey, []byte(secretBody)) != c.Request.Digest {
		t.Fatal("the keyed digest does not match the body under the deployment key")
	}
}

// Attack 3: secrets by name and by shape never reach the journal, in events or in its file.
func TestHostileSecretsNeverReachTheJournal(t *testing.T) {
	app := startApp(t)
	sc := startSidecar(t, app.URL)
	secrets := map[string]string{
		"authKey": "S1-authkey-value", "encryption_key": "S2-enc-value", "signing_key": "S3-sign-value",
		"passcode": "S4-passcode", "X-Auth-Key": "S5-xauth-value", "userinfo": "S6-userinfo-pass",
		"database_url": "S7-dburl-pass", "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTOCJ9.S8-jwt-sig",
		"pem": "S9-pem-body", "aws": "AKIAS10AWSKEYEXAMPLE", "query-authKey": "S11-query-authkey", "query-passcode": "S12-query-pass",
		"bearer-in-note": "S13-bearer-token-xyz",
	}
	body := `{"name":"wf","nodes":[{"id":"n1","data":{"authKey":"S1-authkey-value","encryption_key":"S2-enc-value",` +
		`"signing_key":"S3-sign-value","passcode":"S4-passcode","headers":{"X-Auth-Key":"S5-xauth-value"},` +
		`"url":"https://admin:S6-userinfo-pass@api.example/x","database_url":"postgres://u:S7-dburl-pass@db/x",` +
		`"token_like":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTOCJ9.S8-jwt-sig","cert":"-----BEGIN EC PRIVATE KEY-----\nS9-pem-body\n-----END EC PRIVATE KEY-----",` +
		`"aws":"AKIAS10AWSKEYEXAMPLE","note":"Bearer S13-bearer-token-xyz"}}]}`
	_, id := send(t, sc, "POST", "/v1/workflows?authKey=S11-query-authkey&passcode=S12-query-pass&page=2", jsonKey, body)
	ev, c, _ := mustEvent(t, sc, id)
	all := string(ev.Context) + string(ev.Metadata)
	for what, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("%s in clear in the event: %s", what, s)
		}
	}
	if c.Query["page"][0] != "2" || c.Query["authKey"][0] != capture.Redacted || c.Query["passcode"][0] != capture.Redacted {
		t.Errorf("query: %v", c.Query)
	}
	// The journal file itself: redaction happens before the journal.
	if err := sc.journal.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(sc.dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%s in clear in the journal file", what)
		}
	}
}

// Attack 4: anonymous uploads that stall mid-body cannot strip an authenticated create; and the
// variant with fake credentials (same share as real ones): captures may be cut, but the event
// keeps the resource id from the response's start and says truncated, never bytes 0.
func TestHostileStalledUploadsCannotStripEvents(t *testing.T) {
	for _, tc := range []struct {
		name        string
		attackerHdr string
		attackers   int
		pool        float64 // the share the attackers hold from
	}{{"anonymous", "", 2, 64 << 10}, {"fake API key", "X-API-Key: not-a-real-key\r\n", 5, 192 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			app := startApp(t)
			sc := startSidecar(t, app.URL, func(o *proxy.Options) {
				o.MaxHoldTotal, o.MaxHoldAnonymous, o.MaxHoldBytes = 256<<10, 64<<10, 128<<10
				o.BodyIdleTimeout = time.Hour // the stall lasts the whole test
			})
			addr := strings.TrimPrefix(sc.front.URL, "http://")
			// Attackers send headers and most of a large body, then stall.
			var conns []net.Conn
			t.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			held := func() float64 { return testutil.ToFloat64(sc.metrics.HeldBytes) }
			for i := range tc.attackers {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				part := `{"name":"` + strings.Repeat("x", 40<<10)
				fmt.Fprintf(c, "POST /v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", tc.attackerHdr, len(part)+1<<20, part)
				waitHeld(t, held, min(float64((i+1)*(40<<10)), tc.pool))
			}
			// A legitimate create made meanwhile, with a response larger than what is left.
			big := `{"name":"legit","description":"` + strings.Repeat("d", 100<<10) + `"}`
			st, id := send(t, sc, "POST", "/v1/workflows", jsonKey, big)
			ev, c, meta := mustEvent(t, sc, id)
			hit, _ := app.Hit(id)
			if st != 201 || ev.ResourceID != hit.ResourceID || ev.ResourceID == "" {
				t.Fatalf("status %d, resource id %q, Fiber's %q", st, ev.ResourceID, hit.ResourceID)
			}
			if tc.name == "anonymous" {
				if meta["workflow.name"] != "legit" || c.ValuesUnread != "" || c.Response.Truncated {
					t.Fatalf("anonymous attackers cut an authenticated capture: name %q, %q, response truncated %v", meta["workflow.name"], c.ValuesUnread, c.Response.Truncated)
				}
			} else if !c.Request.Truncated || meta["workflow.name"] != "" || c.ValuesUnread == "" {
				// The attackers did exhaust the share: the capture is cut, and the event says so
				// rather than guessing the name from a prefix (a later duplicate could change it).
				t.Fatalf("cut request capture: truncated %v, name %q, valuesUnread %q", c.Request.Truncated, meta["workflow.name"], c.ValuesUnread)
			}
			if c.Response.Bytes != nil && *c.Response.Bytes == 0 {
				t.Fatal("response.bytes: 0")
			}
		})
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// waitHeld waits until the sidecar holds at least n bytes (the attackers' bodies arrived).
func waitHeld(t *testing.T, held func() float64, n float64) {
	t.Helper()
	for range 2000 {
		if held() >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("held bytes %v never reached %v", held(), n)
}

// Attack 8: 256 concurrent small creates, all in flight together: every event has its resource
// id, nothing is cut, and held bytes return to 0.
func TestHostileConcurrencyNeverCutsCaptures(t *testing.T) {
	const n = 256
	var arrived, halfway sync.WaitGroup
	arrived.Add(n)
	halfway.Add(n)
	release, rest := make(chan struct{}), make(chan struct{})
	go func() { arrived.Wait(); close(release) }()
	go func() { halfway.Wait(); close(rest) }()
	var seq atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Done()
		<-release // every request is in flight before any response starts
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		// 8 KiB responses (more than the prefix every response keeps whatever the budget says),
		// written in two halves: every response is being held at once before any ends.
		fmt.Fprintf(w, `{"workflowId":"00000000-0000-4000-8000-%012d","version":"1.0.0","status":"draft","createdAt":"2026-12-07T00:00:00Z","pad":"%s`, seq.Add(1), strings.Repeat("p", 4<<10))
		w.(http.Flusher).Flush()
		halfway.Done()
		<-rest
		fmt.Fprintf(w, `%s"}`, strings.Repeat("q", 4<<10))
	}))
	t.Cleanup(up.Close)
	sc := startSidecar(t, up.URL) // default budget: 256 MiB, 8 MiB per response
	tr := &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", sc.front.URL+"/v1/workflows", strings.NewReader(fmt.Sprintf(`{"name":"wf-%03d-padding-to-fifty-bytes"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", apiKey)
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, missing, cut := 0, 0, 0
	sc.flush(t)
	err := sc.journal.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		all++
		if e.ResourceID == "" {
			missing++
		}
		if bytes.Contains(e.Context, []byte(`"truncated": true`)) {
			cut++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if all != n || missing != 0 || cut != 0 {
		t.Fatalf("%d events for %d creates, %d without resource id, %d cut", all, n, missing, cut)
	}
	if h := testutil.ToFloat64(sc.metrics.HeldBytes); h != 0 {
		t.Fatalf("held bytes after the load: %v", h)
	}
}

// Attack 5: a body that stops arriving is answered 408 (audited and unaudited routes), the
// upstream connection is closed, and the audited attempt is recorded as FAILED with status 408.
func TestHostileStalledBodyTimesOut(t *testing.T) {
	var upstreamErrs atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			upstreamErrs.Add(1) // the sidecar gave up on the body: the upstream request is aborted
			return
		}
		w.WriteHeader(201)
	}))
	t.Cleanup(up.Close)
	for _, tc := range []struct {
		name, path, which string
		audited           bool
		idle, total       time.Duration
		trickle           bool
	}{
		{"audited, idle", "/v1/workflows", "idle", true, 300 * time.Millisecond, time.Hour, false},
		{"unaudited, idle", "/v1/provider-configurations/x/test", "idle", false, 300 * time.Millisecond, time.Hour, false},
		{"audited, trickling past the total", "/v1/workflows", "total", true, time.Hour, 500 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := startSidecar(t, up.URL, func(o *proxy.Options) { o.BodyIdleTimeout, o.BodyReadTimeout = tc.idle, tc.total })
			c, err := net.Dial("tcp", strings.TrimPrefix(sc.front.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id := fmt.Sprintf("stall-%d", reqSeq.Add(1))
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":\"st", tc.path, id, apiKey)
			done := make(chan struct{})
			if tc.trickle {
				go func() {
					for {
						select {
						case <-done:
							return
						case <-time.After(50 * time.Millisecond):
							if _, err := c.Write([]byte("a")); err != nil {
								return
							}
						}
					}
				}()
			}
			resp, err := http.ReadResponse(bufioReader(c), nil)
			close(done)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), `"code":408`) || !strings.Contains(string(b), tc.which) {
				t.Fatalf("status %d, body %s", resp.StatusCode, b)
			}
			evs := sc.eventsByRequestID(t)
			ev, recorded := evs[id]
			if recorded != tc.audited {
				t.Fatalf("recorded %v, want %v", recorded, tc.audited)
			}
			if tc.audited {
				var ctx eventCtx
				_ = json.Unmarshal(ev.Context, &ctx)
				if ev.Result != chain.ResultFailed || ctx.Status != 408 || !strings.Contains(ctx.UpstreamError, tc.which) {
					t.Fatalf("event: %s status %d error %q", ev.Result, ctx.Status, ctx.UpstreamError)
				}
			}
		})
	}
	if upstreamErrs.Load() == 0 {
		t.Error("no upstream request was aborted")
	}
}

// Attacks 6 and 7, and their variants, are in TestFiberDifferential's crafted list and its
// audit-API check; these pin the exact outcome.
func TestHostileTrailingSlashesAndPreflights(t *testing.T) {
	app := startApp(t)
	sc := startSidecar(t, app.URL)
	for _, target := range []string{"/v1/audit-events//", "/v1/audit-events///", "/V1/Audit-Events//"} {
		st, id := send(t, sc, "GET", target, nil, "")
		if _, ran := app.Hit(id); ran || st != http.StatusUnauthorized {
			t.Errorf("GET %s: status %d, reached Flowker %v", target, st, ran)
		}
	}
	// A CORS preflight: Flowker's middleware answers 204; nothing is recorded.
	st, id := send(t, sc, "OPTIONS", "/v1/webhooks/anything", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}, "")
	if _, ran := app.Hit(id); st != 204 || ran {
		t.Fatalf("preflight: status %d, webhook ran %v", st, ran)
	}
	if _, recorded := sc.eventsByRequestID(t)[id]; recorded {
		t.Fatal("a CORS preflight became an event")
	}
	// Variant: the same OPTIONS without Origin is outside CORS, runs the webhook, and is recorded.
	st, id = send(t, sc, "OPTIONS", "/v1/webhooks/anything", map[string]string{"Access-Control-Request-Method": "POST"}, "")
	hit, ran := app.Hit(id)
	ev, _, _ := mustEvent(t, sc, id)
	if st != 201 || !ran || ev.EventType != chain.ExecutionStarted || ev.ResourceID != hit.ResourceID {
		t.Fatalf("OPTIONS without Origin: status %d, ran %v, event %s %s", st, ran, ev.EventType, ev.ResourceID)
	}
}

// TestStoredEventsKeepVerifying: an event recorded before keyed digests (unkeyed sha256, exact
// bytes) stays in the chain as it was, and the chain — old event and new ones — verifies.
func TestStoredEventsKeepVerifying(t *testing.T) {
	app := startApp(t)
	sc := startSidecar(t, app.URL)
	old, err := sc.journal.Append(context.Background(), journal.Draft{
		EventID: "01a20f23-a720-79cd-9c03-e9d81ff2615b", EventType: chain.WorkflowCreated, Action: chain.ActionCreate,
		Result: chain.ResultSuccess, ResourceID: "5f9e6132-c483-43c3-95b3-d41e18dbe830", ResourceType: chain.ResourceWorkflow,
		Actor:    chain.Actor{Type: chain.ActorAPIKey, ID: "key:cfd1ee4c07e8", IPAddress: "10.0.3.7"},
		Context:  []byte(`{"request": {"body": {"name": "my-flow"}, "bytes": 17, "sha256": "4772dd8efeb4eba10ad4e2953cf103119bcf2802414b0053a0a7e1ad2c1e438f"}}`),
		Metadata: []byte(`{"workflow.name": "my-flow"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		send(t, sc, "POST", "/v1/workflows", jsonKey, fmt.Sprintf(`{"name":"new-%d"}`, i))
	}
	v := chain.NewVerifier(sc.journal.ChainID(), 1, "")
	n := 0
	sc.flush(t)
	err = sc.journal.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		n++
		if e.Sequence == old.Sequence && (e.Hash != old.Hash || !bytes.Contains(e.Context, []byte(`"sha256"`))) {
			t.Errorf("the stored event changed: %s %s", e.Hash, e.Context)
		}
		return v.Add(e)
	})
	if err != nil || v.Problem() != nil || n != 4 {
		t.Fatalf("chain of %d events: %v %v", n, err, v.Problem())
	}
}
