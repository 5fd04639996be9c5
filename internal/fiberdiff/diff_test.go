package fiberdiff

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/proxy"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/proxy/rules"
	"github.com/flowker-audit/flowker-audit/sink"
)

// sidecar is the proxy in front of the Fiber app, journaling into a temporary journal.
type sidecar struct {
	front   *httptest.Server
	journal *journal.Journal
	metrics *proxy.Metrics
	dir     string
}

// testDigestKey keys the body digests of the test sidecars.
var testDigestKey = []byte("fiberdiff-digest-key-0123456789abcdef")

func startSidecar(t testing.TB, upstream string, mut ...func(*proxy.Options)) *sidecar {
	t.Helper()
	dir := t.TempDir()
	j, _, err := journal.Open(journal.Options{Path: filepath.Join(dir, "journal.db"), ChainID: "diff", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	tb, err := rules.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.New(context.Background(), identity.Options{FingerprintKey: []byte("fiberdiff-fingerprint-key-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	red, err := capture.NewRedactor(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := auditapi.New(auditapi.Options{CursorKey: bytes.Repeat([]byte("c"), 32),
		Querier: func(context.Context) (sink.Querier, error) { return nil, errors.New("no query sink in this test") }})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(upstream)
	m := proxy.NewMetrics(prometheus.NewRegistry())
	opts := proxy.Options{Upstream: u, Rules: tb, Identity: id, Redactor: red, CaptureBodies: true, Journal: j,
		DigestKey: testDigestKey, Metrics: m,
		Local: []proxy.Local{{Name: "audit_api", Match: api.Match, Handler: api}}}
	for _, f := range mut {
		f(&opts)
	}
	p, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{front: httptest.NewServer(p), journal: j, metrics: m, dir: dir}
	t.Cleanup(s.front.Close)
	return s
}

// flush waits for the events of the requests answered so far (an event can be committed just
// after its answer).
func (s *sidecar) flush(t testing.TB) {
	t.Helper()
	if err := s.journal.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// eventsByRequestID returns the journaled events keyed by the client's X-Request-Id.
func (s *sidecar) eventsByRequestID(t *testing.T) map[string]chain.Event {
	t.Helper()
	out := map[string]chain.Event{}
	s.flush(t)
	err := s.journal.ReadRange(context.Background(), 1, 0, func(e *chain.Event) error {
		var c struct {
			ClientRequestID string `json:"clientRequestId"`
		}
		if err := json.Unmarshal(e.Context, &c); err != nil {
			return err
		}
		out[c.ClientRequestID] = *e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// request is one generated request, sent byte for byte.
type request struct {
	method, target string
	headers        [][2]string
	body           []byte
	why            string
}

func (r request) send(t *testing.T, addr, reqID string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\nConnection: close\r\n", r.method, r.target, reqID)
	for _, h := range r.headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(r.body))
	b.Write(r.body)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", r.why, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// audited reports whether a rule name is one the sidecar records.
func audited(rule string) bool {
	switch rule {
	case "provider_config.test", "flowker.audit_events", "":
		return false
	}
	return true
}

// metaKey is where an event carries the name Flowker stored, per rule.
var metaKey = map[string]string{
	"workflow.create": "workflow.name", "workflow.clone": "workflow.name", "workflow.update": "workflow.name",
	"workflow.activate": "workflow.name", "workflow.deactivate": "workflow.name", "workflow.draft": "workflow.name",
	"provider_config.create": "provider_config.name", "provider_config.update": "provider_config.name",
	"workflow.create_from_template": "workflow.name",
}

// check compares one event (or its absence) with what Fiber did.
func check(t *testing.T, r request, status int, hit Hit, ran bool, ev chain.Event, recorded bool, st *stats) {
	t.Helper()
	st.count(ran, hit, recorded)
	desc := fmt.Sprintf("%s %q (%s) headers %q body %q", r.method, r.target, r.why, r.headers, r.body)
	var ctx struct {
		Rule          string   `json:"rule"`
		Unavailable   string   `json:"resourceIdUnavailable"`
		ValuesUnread  string   `json:"valuesUnread"`
		AmbiguousKeys []string `json:"ambiguousKeys"`
	}
	if recorded {
		if err := json.Unmarshal(ev.Context, &ctx); err != nil {
			t.Fatal(err)
		}
	}
	switch {
	case ran && audited(hit.Rule):
		if !recorded {
			t.Errorf("%s: Fiber ran %s (status %d) but there is no event", desc, hit.Rule, hit.Status)
			return
		}
		if ctx.Rule != hit.Rule {
			t.Errorf("%s: Fiber ran %s, the event says rule %s", desc, hit.Rule, ctx.Rule)
			return
		}
		success := hit.Status >= 200 && hit.Status < 300
		if (ev.Result == chain.ResultSuccess) != success {
			t.Errorf("%s: Fiber answered %d, the event says %s", desc, hit.Status, ev.Result)
		}
		if success && hit.ResourceID != "" && ev.ResourceID != rules.CanonicalID(hit.ResourceID) && (ev.ResourceID != "" || ctx.Unavailable == "") {
			t.Errorf("%s: resource id %q, Fiber's %q", desc, ev.ResourceID, hit.ResourceID)
		}
		if !success {
			return // nothing was stored; what a failed attempt's metadata says binds nobody
		}
		var meta map[string]string
		if err := json.Unmarshal(ev.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		want := hit.Name
		if hit.Rule == "workflow.create_from_template" {
			want = hit.WFName
			if got, ok := meta["workflow.template_id"]; ok && got != capture.Sanitize(hit.TemplateID) {
				t.Errorf("%s: template id %q, Fiber bound %q", desc, got, hit.TemplateID)
			}
		}
		if hit.Rule == "provider_config.create" {
			if got, ok := meta["provider_config.provider_id"]; ok && got != capture.Sanitize(hit.ProviderID) {
				t.Errorf("%s: provider id %q, Fiber bound %q", desc, got, hit.ProviderID)
			} else if !ok && hit.ProviderID != "" && ctx.ValuesUnread == "" {
				t.Errorf("%s: no provider id, Fiber bound %q, and the event does not say why", desc, hit.ProviderID)
			}
		}
		key, ok := metaKey[hit.Rule]
		if !ok {
			return
		}
		got, present := meta[key]
		switch {
		case present && got != capture.Sanitize(want):
			t.Errorf("%s: %s = %q, Fiber bound %q", desc, key, got, want)
		case !present && want != "" && ctx.ValuesUnread == "":
			t.Errorf("%s: no %s, Fiber bound %q, and the event does not say why", desc, key, want)
		}
	case ran:
		if recorded {
			t.Errorf("%s: Fiber ran %s, which changes nothing, but an event was recorded (%s)", desc, hit.Rule, ev.EventType)
		}
	default:
		// Fiber ran no route (404, 405, 400 for an unknown method, or the CORS preflight).
		if recorded && (ev.EventType != chain.UnclassifiedMutation || ev.Result == chain.ResultSuccess) {
			t.Errorf("%s: Fiber ran no route (status %d), the event says %s %s", desc, status, ev.EventType, ev.Result)
		}
		if rules.Preflight(mustRequest(r)) && recorded {
			t.Errorf("%s: a CORS preflight was recorded", desc)
		}
	}
}

type stats struct{ audited, bound, bodyErr, other, none int }

func (s *stats) count(ran bool, hit Hit, recorded bool) {
	switch {
	case ran && audited(hit.Rule):
		s.audited++
		if hit.BodyError {
			s.bodyErr++
		} else if hit.Name != "" || hit.WFName != "" {
			s.bound++
		}
	case ran:
		s.other++
	default:
		s.none++
	}
}

func mustRequest(r request) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Method = r.method
	for _, h := range r.headers {
		req.Header.Add(h[0], h[1])
	}
	return req
}

// TestFiberDifferential sends crafted and generated requests through the sidecar to a real
// Fiber v2.52 app laid out like Flowker and checks every event against what Fiber parsed.
func TestFiberDifferential(t *testing.T) {
	app, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	sc := startSidecar(t, app.URL)
	addr := strings.TrimPrefix(sc.front.URL, "http://")

	reqs := crafted()
	rng := rand.New(rand.NewPCG(14, 2026))
	for range 600 {
		reqs = append(reqs, generate(rng))
	}
	var st stats
	statuses := make([]int, len(reqs))
	for i, r := range reqs {
		statuses[i] = r.send(t, addr, fmt.Sprintf("req-%04d", i))
	}
	evs := sc.eventsByRequestID(t)
	for i, r := range reqs {
		id := fmt.Sprintf("req-%04d", i)
		hit, ran := app.Hit(id)
		ev, recorded := evs[id]
		check(t, r, statuses[i], hit, ran, ev, recorded, &st)
	}
	t.Logf("%d requests: %d ran an audited route (%d bound a value, %d refused the body), %d ran another route, %d ran none; %d events",
		len(reqs), st.audited, st.bound, st.bodyErr, st.other, st.none, len(evs))
	if st.bound < 100 || st.bodyErr < 20 || st.none < 20 {
		t.Errorf("the generator no longer covers the cases it was written for: %+v", st)
	}
	// The audit API is the sidecar's, however many trailing slashes it is called with.
	for i, target := range []string{"/v1/audit-events", "/v1/audit-events/", "/v1/audit-events//", "/V1/AUDIT-EVENTS///"} {
		id := fmt.Sprintf("audit-%d", i)
		st := request{method: "GET", target: target}.send(t, addr, id)
		if _, ran := app.Hit(id); ran || st != http.StatusUnauthorized {
			t.Errorf("GET %s reached Flowker's own audit API (status %d)", target, st)
		}
	}
}

const jsonCT = "application/json"

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// crafted is one request per known divergence between a naive reading and Fiber's.
func crafted() []request {
	ct := func(v string) [][2]string { return [][2]string{{"Content-Type", v}} }
	return []request{
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":"AUDIT-SEES-THIS","name":"FLOWKER-STORES-THIS"}`), "duplicate key"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":"AUDIT-SEES-THIS","NAME":"FLOWKER-STORES-THIS"}`), "case collision"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"n\u0061me":"escaped key"}`), "escaped key"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":"  pc-1  "}`), "spaces kept"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":"kept","name":null}`), "null keeps"},
		{"POST", "/v1/workflows", ct("application/x-www-form-urlencoded"), []byte(`name=form+name&name=last%20form`), "form body"},
		{"POST", "/v1/workflows", ct("application/x-www-form-urlencoded"), []byte(`name=a&NAME=b`), "form case collision"},
		{"POST", "/v1/workflows", ct("Application/X-WWW-Form-Urlencoded"), []byte(`name=a`), "form type fasthttp does not read"},
		{"POST", "/v1/workflows", ct("application/vnd.flowker+json"), []byte(`{"name":"vendor"}`), "vendor json"},
		{"POST", "/v1/workflows", ct("application/json ;charset=utf-8"), []byte(`{"name":"space before ;"}`), "not json to Fiber"},
		{"POST", "/v1/workflows", ct("text/plain"), []byte(`{"name":"plain"}`), "text/plain"},
		{"POST", "/v1/workflows", [][2]string{{"Content-Type", "text/plain"}, {"Content-Type", jsonCT}}, []byte(`{"name":"second type"}`), "two content types, json last"},
		{"POST", "/v1/workflows", [][2]string{{"Content-Type", jsonCT}, {"Content-Type", "text/plain"}}, []byte(`{"name":"first type"}`), "two content types, json first"},
		{"POST", "/v1/workflows", [][2]string{{"Content-Type", jsonCT}, {"Content-Encoding", "gzip"}}, gz([]byte(`{"name":"gzipped"}`)), "gzip body"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":"x\u0000y"}`), "NUL"},
		{"POST", "/v1/workflows", ct(jsonCT), []byte(`{"name":5}`), "number name"},
		{"POST", "/v1/workflows/from-template", ct(jsonCT), []byte(`{"templateId":"t1","params":{"workflowName":"one","WorkflowName":"two"}}`), "map keys exact"},
		{"POST", "/v1/workflows/from-template", ct(jsonCT), []byte(`{"templateId":"t1","params":{"workflowName":"one"},"params":{"x":1}}`), "maps merge"},
		{"POST", "/v1/provider-configurations", ct(jsonCT), []byte(`{"name":"req","providerId":"p","providerID":"q","config":{}}`), "provider id case"},
		{"PATCH", "/v1/provider-configurations/abc", ct(jsonCT), []byte(`{"config":{}}`), "update without name: the response has it"},
		{"OPTIONS", "/v1/webhooks/anything", [][2]string{{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"}}, nil, "CORS preflight"},
		{"OPTIONS", "/v1/webhooks/anything", [][2]string{{"Access-Control-Request-Method", "POST"}}, nil, "OPTIONS without Origin reaches the webhook"},
		{"OPTIONS", "/v1/workflows", [][2]string{{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}}, nil, "preflight from another origin"},
		{"post", "/v1/workflows", ct(jsonCT), []byte(`{"name":"lower method"}`), "lower-case method"},
		{"post", "/v1/webhooks/x", ct(jsonCT), []byte(`{}`), "lower-case method on the webhook"},
		{"POST", "/v1/workflows//", ct(jsonCT), []byte(`{"name":"two slashes"}`), "trailing slashes"},
		{"POST", "/V1/WORKFLOWS", ct(jsonCT), []byte(`{"name":"upper"}`), "upper-case path"},
		{"POST", "//v1/workflows", ct(jsonCT), []byte(`{"name":"leading"}`), "leading double slash"},
		{"POST", "/v1/work%66lows", ct(jsonCT), []byte(`{"name":"encoded"}`), "percent-encoded"},
		{"PUT", "/v1/workflows", ct(jsonCT), []byte(`{"name":"wrong method"}`), "405"},
		{"POST", "/v1/webhooks", ct(jsonCT), []byte(`{}`), "webhook root"},
		{"HEAD", "/v1/webhooks/h", nil, nil, "HEAD webhook"},
		{"POST", "/v1/provider-configurations/abc/test", ct(jsonCT), []byte(`{}`), "unaudited test route"},
	}
}

var (
	names   = []string{"wf", "  spaced  ", "tab\tname", "é", "quote\"d", "A", "back\\slash", "\u2028", "<b>", ""}
	keyCase = []string{"name", "Name", "NAME", "nAmE", `n\u0061me`, `N\u0041ME`}
	cts     = []string{jsonCT, "application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json",
		"text/plain", "application/x-www-form-urlencoded", "", "application/json ;x=y", "text/json"}
	routes = []struct{ method, path string }{
		{"POST", "/v1/workflows"}, {"POST", "/v1/workflows/from-template"}, {"PUT", "/v1/workflows/{id}"},
		{"POST", "/v1/workflows/{id}/clone"}, {"POST", "/v1/workflows/{id}/activate"}, {"DELETE", "/v1/workflows/{id}"},
		{"POST", "/v1/provider-configurations"}, {"PATCH", "/v1/provider-configurations/{id}"},
		{"POST", "/v1/workflows/{id}/executions"}, {"POST", "/v1/webhooks/{id}/deep"}, {"GET", "/v1/workflows"},
		{"POST", "/v1/provider-configurations/{id}/test"}, {"PATCH", "/v1/workflows/{id}"},
	}
	methods = []string{"POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS", "post", "PROPFIND"}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// generate builds a random request: path spelling, method, content type and a body with
// duplicate, case-colliding and escaped keys.
func generate(rng *rand.Rand) request {
	rt := pick(rng, routes)
	method := rt.method
	if rng.IntN(8) == 0 {
		method = pick(rng, methods)
	}
	path := strings.ReplaceAll(rt.path, "{id}", pick(rng, []string{"c5160020-5d68-4a05-b984-cef31de6428a", "ABC", "x%20y", "{C5160020-5D68-4A05-B984-CEF31DE6428A}"}))
	switch rng.IntN(6) {
	case 0:
		path = strings.ToUpper(path)
	case 1:
		path += strings.Repeat("/", 1+rng.IntN(3))
	case 2:
		path = strings.Replace(path, "/v1/", "/v1//", 1)
	}
	ct := pick(rng, cts)
	var body string
	if strings.Contains(ct, "form") {
		var parts []string
		for range 1 + rng.IntN(3) {
			k := pick(rng, []string{"name", "Name", "providerId", "templateId", "other"})
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(pick(rng, names)))
		}
		body = strings.Join(parts, "&")
	} else {
		var members []string
		for range 1 + rng.IntN(4) {
			k := pick(rng, keyCase)
			v := jsonString(pick(rng, names))
			switch rng.IntN(10) {
			case 0:
				v = "null"
			case 1:
				v = "7"
			}
			members = append(members, `"`+k+`":`+v) // keyCase entries are JSON string contents, escapes included
		}
		members = append(members, `"providerId":`+jsonString(pick(rng, names)), `"config":{}`,
			`"templateId":"t","params":{`+jsonString(pick(rng, []string{"workflowName", "WorkflowName"}))+`:`+jsonString(pick(rng, names))+`}`)
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		body = "{" + strings.Join(members, ",") + "}"
	}
	var hdr [][2]string
	if ct != "" {
		hdr = append(hdr, [2]string{"Content-Type", ct})
	}
	if method == "OPTIONS" && rng.IntN(2) == 0 {
		hdr = append(hdr, [2]string{"Access-Control-Request-Method", "POST"})
		if rng.IntN(2) == 0 {
			hdr = append(hdr, [2]string{"Origin", "https://app.example"})
		}
	}
	return request{method: method, target: path, headers: hdr, body: []byte(body), why: "generated"}
}

// FuzzFiberDifferential: any method, path, content type and body, sent through the sidecar to the
// Fiber app, gives an event that agrees with what Fiber did, or says that it cannot.
func FuzzFiberDifferential(f *testing.F) {
	for _, r := range crafted() {
		ct := ""
		for _, h := range r.headers {
			if h[0] == "Content-Type" {
				ct = h[1]
			}
		}
		f.Add(r.method, r.target, ct, r.body)
	}
	app, err := Start()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = app.Close() })
	sc := startSidecar(f, app.URL)
	n := 0
	f.Fuzz(func(t *testing.T, method, target, ct string, body []byte) {
		if !validToken(method) || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t") || strings.ContainsAny(ct, "\r\n\x00") {
			return
		}
		n++
		id := fmt.Sprintf("fuzz-%d", n)
		before := sc.journal.Last()
		r := request{method: method, target: target, body: body, why: "fuzzed"}
		if ct != "" {
			r.headers = [][2]string{{"Content-Type", ct}}
		}
		status := r.send(t, strings.TrimPrefix(sc.front.URL, "http://"), id)
		var ev chain.Event
		recorded := false
		sc.flush(t)
		_ = sc.journal.ReadRange(context.Background(), before+1, 0, func(e *chain.Event) error {
			if bytes.Contains(e.Context, []byte(`"clientRequestId": "`+id+`"`)) {
				ev, recorded = *e, true
			}
			return nil
		})
		hit, ran := app.Hit(id)
		check(t, r, status, hit, ran, ev, recorded, &stats{})
	})
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
