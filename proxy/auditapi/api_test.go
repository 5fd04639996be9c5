package auditapi

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMatchRoute(t *testing.T) {
	for _, tc := range []struct {
		path  string
		route route
		id    string
	}{
		{"/v1/audit-events", routeList, ""},
		{"/v1/audit-events/", routeList, ""},
		{"/V1/Audit-Events/", routeList, ""},
		{"/v1/AUDIT-EVENTS", routeList, ""},
		{"/v1/audit-events/abc", routeGet, "abc"},
		{"/v1/audit-events/ABC/", routeGet, "ABC"},
		{"/v1/audit-events/abc/verify", routeVerify, "abc"},
		{"/v1/audit-events/abc/VERIFY/", routeVerify, "abc"},
		{"/audit-trail/config.json", routeUIConfig, ""},
		{"/Audit-Trail/Config.JSON", routeUIConfig, ""},
		{"/v1/audit-events/abc/other", routeNone, ""},
		{"/v1/audit-events/abc/verify/x", routeNone, ""},
		{"/v1/audit-eventsx", routeNone, ""},
		{"/v1/audit-events//", routeList, ""}, // Fiber strips every trailing slash: Flowker would route it to its list
		{"/v1/audit-event", routeNone, ""},
		{"/v1/workflows", routeNone, ""},
		{"/audit-trail", routeNone, ""},
		{"/audit-trail/", routeNone, ""},
		{"/", routeNone, ""},
		{"", routeNone, ""},
	} {
		rt, id, _ := matchRoute(tc.path)
		if rt != tc.route || id != tc.id {
			t.Errorf("matchRoute(%q) = %v %q, want %v %q", tc.path, rt, id, tc.route, tc.id)
		}
	}
}

// TestSearchConformance checks every parameter of the seed's OpenAPI (GET /v1/audit-events) and
// every error case against a brute-force filter over the same events.
func TestSearchConformance(t *testing.T) {
	events := testEvents(600)
	store := auditapitest.NewStore(events...)
	env := newTestAPI(t, store, nil)
	ref := events[137]
	ts := ref.Timestamp
	rfc := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	upper := strings.ToUpper(ref.ResourceID)

	type want struct {
		filter sink.Filter
		order  sink.Order
		limit  int
	}
	ok := func(f sink.Filter, o sink.Order, limit int) *want { return &want{f, o, limit} }
	for _, tc := range []struct {
		name   string
		query  string
		ok     *want
		status int
		code   string
		msg    string // substring of the message
	}{
		{name: "defaults", query: "", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "limit", query: "limit=5", ok: ok(sink.Filter{}, sink.Desc, 5)},
		{name: "limit 1", query: "limit=1", ok: ok(sink.Filter{}, sink.Desc, 1)},
		{name: "limit 100", query: "limit=100", ok: ok(sink.Filter{}, sink.Desc, 100)},
		{name: "limit zero is default", query: "limit=0", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "limit negative is default", query: "limit=-3", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "limit clamped", query: "limit=101", ok: ok(sink.Filter{}, sink.Desc, 100)},
		{name: "limit huge clamped", query: "limit=100000", ok: ok(sink.Filter{}, sink.Desc, 100)},
		{name: "limit empty is default", query: "limit=", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "limit not integer", query: "limit=abc", status: 400, code: CodeInvalidQueryParam, msg: "limit"},
		{name: "limit fraction", query: "limit=1.5", status: 400, code: CodeInvalidQueryParam},
		{name: "limit overflow", query: "limit=99999999999999999999", status: 400, code: CodeInvalidQueryParam},
		{name: "limit repeated", query: "limit=1&limit=2", status: 400, code: CodeInvalidQueryParam, msg: "limit given 2 times"},
		{name: "sortOrder ASC", query: "sortOrder=ASC", ok: ok(sink.Filter{}, sink.Asc, 20)},
		{name: "sortOrder asc", query: "sortOrder=asc", ok: ok(sink.Filter{}, sink.Asc, 20)},
		{name: "sortOrder DESC", query: "sortOrder=DESC", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "sortOrder other is DESC", query: "sortOrder=sideways", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "eventType", query: "eventType=WORKFLOW_UPDATED&limit=100", ok: ok(sink.Filter{EventType: chain.WorkflowUpdated}, sink.Desc, 100)},
		{name: "eventType sidecar type", query: "eventType=EXECUTOR_CONFIG_UPDATED&limit=100", ok: ok(sink.Filter{EventType: chain.ExecutorConfigUpdated}, sink.Desc, 100)},
		{name: "eventType lower case", query: "eventType=workflow_created", status: 400, code: CodeInvalidFilter, msg: "invalid eventType \"workflow_created\": must be one of WORKFLOW_CREATED,"},
		{name: "eventType unknown", query: "eventType=NOPE", status: 400, code: CodeInvalidFilter, msg: "eventType"},
		{name: "eventType repeated", query: "eventType=WORKFLOW_CREATED&eventType=WORKFLOW_UPDATED", status: 400, code: CodeInvalidQueryParam, msg: "eventType"},
		{name: "action", query: "action=UPDATE&limit=100", ok: ok(sink.Filter{Action: chain.ActionUpdate}, sink.Desc, 100)},
		{name: "action lower case", query: "action=update", status: 400, code: CodeInvalidFilter, msg: "invalid action"},
		{name: "result", query: "result=FAILED&limit=100", ok: ok(sink.Filter{Result: chain.ResultFailed}, sink.Desc, 100)},
		{name: "result lower case", query: "result=failed", status: 400, code: CodeInvalidFilter, msg: "SUCCESS, FAILED"},
		{name: "resourceType", query: "resourceType=provider_config&limit=100", ok: ok(sink.Filter{ResourceType: chain.ResourceProviderConfig}, sink.Desc, 100)},
		{name: "resourceType upper case", query: "resourceType=WORKFLOW", status: 400, code: CodeInvalidFilter, msg: "resourceType"},
		{name: "resourceId", query: "limit=100&resourceId=" + ref.ResourceID, ok: ok(sink.Filter{ResourceID: ref.ResourceID}, sink.Desc, 100)},
		{name: "resourceId upper case", query: "limit=100&resourceId=" + upper, ok: ok(sink.Filter{ResourceID: ref.ResourceID}, sink.Desc, 100)},
		{name: "resourceId urn", query: "limit=100&resourceId=urn:uuid:" + ref.ResourceID, ok: ok(sink.Filter{ResourceID: ref.ResourceID}, sink.Desc, 100)},
		{name: "resourceId braces", query: "limit=100&resourceId=%7B" + ref.ResourceID + "%7D", ok: ok(sink.Filter{ResourceID: ref.ResourceID}, sink.Desc, 100)},
		{name: "resourceId unknown", query: "resourceId=6ba7b810-9dad-41d1-80b4-00c04fd430c8", ok: ok(sink.Filter{ResourceID: "6ba7b810-9dad-41d1-80b4-00c04fd430c8"}, sink.Desc, 20)},
		{name: "resourceId not uuid", query: "resourceId=not-a-uuid", status: 400, code: CodeInvalidID, msg: "invalid resourceId format, expected UUID"},
		{name: "dateFrom", query: "sortOrder=ASC&limit=50&dateFrom=" + url.QueryEscape(rfc(ts)), ok: ok(sink.Filter{From: ts}, sink.Asc, 50)},
		{name: "dateTo", query: "limit=50&dateTo=" + url.QueryEscape(rfc(ts)), ok: ok(sink.Filter{To: ts}, sink.Desc, 50)},
		{name: "dates inclusive", query: "dateFrom=" + url.QueryEscape(rfc(ts)) + "&dateTo=" + url.QueryEscape(rfc(ts)), ok: ok(sink.Filter{From: ts, To: ts}, sink.Desc, 20)},
		{name: "dateFrom sub-microsecond rounds up", query: "limit=50&sortOrder=ASC&dateFrom=" + url.QueryEscape(rfc(ts.Add(500))), ok: ok(sink.Filter{From: ts.Add(time.Microsecond)}, sink.Asc, 50)},
		{name: "dateTo sub-microsecond rounds down", query: "limit=50&dateTo=" + url.QueryEscape(rfc(ts.Add(500))), ok: ok(sink.Filter{To: ts}, sink.Desc, 50)},
		{name: "dateFrom offset", query: "sortOrder=ASC&dateFrom=" + url.QueryEscape(ts.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)), ok: ok(sink.Filter{From: ts}, sink.Asc, 20)},
		{name: "dateFrom negative offset", query: "sortOrder=ASC&dateFrom=" + ts.In(time.FixedZone("", -3*3600)).Format(time.RFC3339Nano), ok: ok(sink.Filter{From: ts}, sink.Asc, 20)},
		{name: "dateFrom unencoded plus", query: "dateFrom=2026-03-02T10:00:00+02:00", status: 400, code: CodeInvalidDateFormat, msg: "%2B"},
		{name: "dateFrom date only", query: "dateFrom=2026-03-02", status: 400, code: CodeInvalidDateFormat, msg: "invalid dateFrom"},
		{name: "dateTo garbage", query: "dateTo=yesterday", status: 400, code: CodeInvalidDateFormat, msg: "invalid dateTo"},
		{name: "dateTo zero time matches nothing", query: "dateTo=0001-01-01T00:00:00Z", ok: ok(sink.Filter{To: time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)}, sink.Desc, 20)},
		{name: "dateFrom after dateTo", query: "dateFrom=2026-03-03T00:00:00Z&dateTo=2026-03-02T00:00:00Z", status: 400, code: CodeInvalidDateRange},
		{name: "cursor garbage", query: "cursor=1234", status: 400, code: CodeInvalidCursor, msg: "invalid cursor"},
		{name: "cursor not base64", query: "cursor=%21%21%21", status: 400, code: CodeInvalidCursor},
		{name: "unknown parameter ignored", query: "foo=bar&actor=x", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "bad percent-encoding", query: "eventType=%zz", status: 400, code: CodeInvalidQueryParam, msg: "percent-encoding"},
		{name: "semicolon", query: "limit=5;sortOrder=ASC", status: 400, code: CodeInvalidQueryParam, msg: "';'"},
		{name: "actorType", query: "actorType=api_key&limit=100", ok: ok(sink.Filter{ActorType: chain.ActorAPIKey}, sink.Desc, 100)},
		{name: "actorType user ASC", query: "actorType=user&limit=100&sortOrder=ASC", ok: ok(sink.Filter{ActorType: chain.ActorUser}, sink.Asc, 100)},
		{name: "actorType upper case", query: "actorType=USER", status: 400, code: CodeInvalidFilter, msg: "invalid actorType \"USER\": must be one of user, system, api_key"},
		{name: "actorType unknown", query: "actorType=robot", status: 400, code: CodeInvalidFilter, msg: "actorType"},
		{name: "actorType repeated", query: "actorType=user&actorType=system", status: 400, code: CodeInvalidQueryParam, msg: "actorType given 2 times"},
		{name: "actorId", query: "limit=100&actorId=" + url.QueryEscape(ref.Actor.ID), ok: ok(sink.Filter{ActorID: ref.Actor.ID}, sink.Desc, 100)},
		{name: "actorId is exact (case kept)", query: "limit=100&actorId=" + url.QueryEscape(strings.ToUpper(ref.Actor.ID)), ok: ok(sink.Filter{ActorID: strings.ToUpper(ref.Actor.ID)}, sink.Desc, 100)},
		{name: "actorId unknown", query: "actorId=nobody", ok: ok(sink.Filter{ActorID: "nobody"}, sink.Desc, 20)},
		{name: "actorType+actorId", query: "limit=100&actorType=" + ref.Actor.Type + "&actorId=" + url.QueryEscape(ref.Actor.ID), ok: ok(sink.Filter{ActorType: ref.Actor.Type, ActorID: ref.Actor.ID}, sink.Desc, 100)},
		{name: "actorId empty is any", query: "actorId=&actorType=", ok: ok(sink.Filter{}, sink.Desc, 20)},
		{name: "actorId too long", query: "actorId=" + strings.Repeat("x", MaxActorIDLen+1), status: 400, code: CodeInvalidQueryParam, msg: "invalid actorId: longer than 255 bytes"},
		{name: "actorId not UTF-8", query: "actorId=%ff", status: 400, code: CodeInvalidQueryParam, msg: "invalid actorId"},
		{name: "actorId NUL", query: "actorId=a%00b", status: 400, code: CodeInvalidQueryParam, msg: "invalid actorId"},
		{name: "actorId repeated", query: "actorId=a&actorId=b", status: 400, code: CodeInvalidQueryParam, msg: "actorId given 2 times"},
		{name: "combined", query: "limit=100&sortOrder=ASC&resourceType=execution&result=SUCCESS&action=EXECUTE&dateFrom=" + url.QueryEscape(rfc(events[0].Timestamp.Add(time.Minute))),
			ok: ok(sink.Filter{ResourceType: chain.ResourceExecution, Result: chain.ResultSuccess, Action: chain.ActionExecute, From: events[0].Timestamp.Add(time.Minute)}, sink.Asc, 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.get(t, "/v1/audit-events?"+tc.query)
			if tc.ok == nil {
				if w.Code != tc.status {
					t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
				}
				e := decodeError(t, w)
				if e.Code != tc.code || e.Title != "Bad Request" || !strings.Contains(e.Message, tc.msg) {
					t.Fatalf("error %+v, want code %s and message containing %q", e, tc.code, tc.msg)
				}
				return
			}
			l := decodeList(t, w)
			want := bruteForce(events, tc.ok.filter, tc.ok.order)
			if len(want) > tc.ok.limit {
				want = want[:tc.ok.limit]
				if !l.HasMore || l.NextCursor == "" {
					t.Fatalf("hasMore %v nextCursor %q, want more", l.HasMore, l.NextCursor)
				}
			} else if l.HasMore || l.NextCursor != "" {
				t.Fatalf("hasMore %v nextCursor %q on the last page", l.HasMore, l.NextCursor)
			}
			sameIDs(t, tc.query, l.Items, want)
		})
	}
}

func TestRepeatedParametersAre400(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(), nil)
	for _, p := range knownParams {
		w := env.get(t, "/v1/audit-events?"+p+"=x&"+p+"=y")
		if w.Code != 400 || decodeError(t, w).Code != CodeInvalidQueryParam {
			t.Errorf("%s repeated: %d %s", p, w.Code, w.Body)
		}
	}
}

func TestEmptyStoreAnswersEmptyArray(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(), nil)
	w := env.get(t, "/v1/audit-events")
	if got := strings.TrimSpace(w.Body.String()); got != `{"items":[],"nextCursor":"","hasMore":false}` {
		t.Fatalf("body %s", got)
	}
}

// TestEncodingGolden pins the wire shape: Flowker's key order, chainId and sequence added,
// context and metadata byte for byte as stored, previousHash omitted on the genesis.
func TestEncodingGolden(t *testing.T) {
	e := chain.Event{
		EventID: "9d8e7f6a-5b4c-4321-9876-a1b2c3d4e5f6", EventType: chain.WorkflowCreated, Action: chain.ActionCreate,
		Result: chain.ResultSuccess, ResourceID: "550e8400-e29b-41d4-a716-446655440000", ResourceType: chain.ResourceWorkflow,
		Actor:     chain.Actor{Type: chain.ActorAPIKey, ID: "key:3f9a1c2b4d5e6f70", IPAddress: "192.0.2.10"},
		Context:   json.RawMessage(`{"path": "/v1/workflows", "method": "POST", "status": 201}`),
		Metadata:  json.RawMessage(`{"workflow.name": "a <b> & \"c\" 1.50"}`),
		Timestamp: time.Date(2026, 3, 17, 14, 35, 15, 123400000, time.UTC), ChainID: "chain-a", Sequence: 1,
	}
	e.Seal()
	e2 := e
	e2.EventID, e2.Sequence, e2.PreviousHash, e2.Context, e2.Metadata = "0d8e7f6a-5b4c-4321-9876-a1b2c3d4e5f6", 2, e.Hash, nil, nil
	e2.Timestamp = e2.Timestamp.Add(time.Second).In(time.FixedZone("x", 3600))
	e2.Seal()
	env := newTestAPI(t, auditapitest.NewStore(e, e2), nil)
	var got []byte
	for _, id := range []string{e.EventID, e2.EventID} {
		w := env.get(t, "/v1/audit-events/"+id)
		if w.Code != 200 {
			t.Fatalf("get: %d %s", w.Code, w.Body)
		}
		got = append(got, w.Body.Bytes()...)
	}
	golden := filepath.Join("testdata", "events.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Anyone can recompute the hash from the API output alone.
	for _, line := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		var back chain.Event
		if err := json.Unmarshal([]byte(line), &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Context) == 0 || len(back.Metadata) == 0 {
			t.Fatalf("context/metadata missing: %s", line)
		}
		if h := back.ComputeHash(); h != back.Hash {
			t.Fatalf("hash recomputed from the output %s, stored %s", h, back.Hash)
		}
	}
}

func TestGet(t *testing.T) {
	events := testEvents(30)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	ev := events[3]
	for _, tc := range []struct {
		name, id string
		status   int
		body     string
	}{
		{"canonical", ev.EventID, 200, ""},
		{"upper case", strings.ToUpper(ev.EventID), 200, ""},
		{"braces", "%7B" + ev.EventID + "%7D", 200, ""},
		{"not a uuid", "nope", 400, `{"code":"FLK-0002","title":"Bad Request","message":"invalid audit event ID"}`},
		{"unknown", "6ba7b810-9dad-41d1-80b4-00c04fd430c8", 404, `{"code":"FLK-0600","title":"Not Found","message":"audit entry not found"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.get(t, "/v1/audit-events/"+tc.id)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.body != "" {
				if got := strings.TrimSpace(w.Body.String()); got != tc.body {
					t.Fatalf("body %s, want %s", got, tc.body)
				}
				return
			}
			var got chain.Event
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.EventID != ev.EventID || got.Hash != ev.Hash || got.Sequence != ev.Sequence || got.ChainID != ev.ChainID {
				t.Fatalf("got %+v", got)
			}
		})
	}
	// The genesis has no previousHash key (Flowker's omitempty), and does not fail like Flowker's.
	w := env.get(t, "/v1/audit-events/"+events[0].EventID)
	if w.Code != 200 || strings.Contains(w.Body.String(), "previousHash") {
		t.Fatalf("genesis: %d %s", w.Code, w.Body)
	}
}

func TestMethodsAndHead(t *testing.T) {
	events := testEvents(30)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	auth := map[string]string{HeaderAPIKey: testKey}
	for _, target := range []string{"/v1/audit-events", "/v1/audit-events/" + events[0].EventID, "/v1/audit-events/x/verify", "/audit-trail/config.json", "/V1/Audit-Events/"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			w := env.do(t, m, target, auth)
			if w.Code != 405 || strings.TrimSpace(w.Body.String()) != `{"code":405,"title":"request_failed","message":"Method Not Allowed"}` {
				t.Errorf("%s %s: %d %s", m, target, w.Code, w.Body)
			}
			if w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", m, target, w.Header().Get("Allow"))
			}
		}
		// Authentication comes first, even before the method check.
		if w := env.do(t, http.MethodDelete, target, nil); w.Code != 401 {
			t.Errorf("DELETE %s without key: %d", target, w.Code)
		}
	}
	w := env.do(t, http.MethodHead, "/v1/audit-events/"+events[0].EventID, auth)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: %d %v", w.Code, w.Header())
	}
}

func TestStoreUnavailable(t *testing.T) {
	events := testEvents(30)
	const secret = "dial tcp 127.0.0.1:9000: password=hunter2 connection refused"
	want := `{"code":"FLK-0612","title":"Service Unavailable","message":"audit store unavailable"}`
	t.Run("querier provider fails", func(t *testing.T) {
		env := newTestAPI(t, nil, func(o *Options) {
			o.Querier = func(context.Context) (sink.Querier, error) { return nil, errors.New(secret) }
		})
		for _, target := range []string{"/v1/audit-events", "/v1/audit-events/" + events[0].EventID, "/v1/audit-events/" + events[0].EventID + "/verify"} {
			w := env.get(t, target)
			if w.Code != 503 || strings.TrimSpace(w.Body.String()) != want {
				t.Fatalf("%s: %d %s", target, w.Code, w.Body)
			}
		}
		if !strings.Contains(env.logs.String(), "hunter2") {
			t.Fatalf("the cause was not logged: %s", env.logs)
		}
		// Bad input is still 400, and the config of the page needs no store.
		if w := env.get(t, "/v1/audit-events?limit=x"); w.Code != 400 {
			t.Fatalf("bad input with store down: %d", w.Code)
		}
		if w := env.get(t, "/audit-trail/config.json"); w.Code != 200 {
			t.Fatalf("config with store down: %d", w.Code)
		}
	})
	t.Run("sink errors during the request", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		env := newTestAPI(t, store, nil)
		store.SetErr(errors.New(secret))
		for _, target := range []string{"/v1/audit-events", "/v1/audit-events/" + events[0].EventID, "/v1/audit-events/" + events[0].EventID + "/verify"} {
			w := env.get(t, target)
			if w.Code != 503 || strings.TrimSpace(w.Body.String()) != want {
				t.Fatalf("%s: %d %s", target, w.Code, w.Body)
			}
		}
	})
}

// panicQuerier is a bug: it panics.
type panicQuerier struct{ sink.Querier }

func (panicQuerier) Search(context.Context, sink.Query) (sink.Page, error) { panic("boom") }

func TestPanicIs500(t *testing.T) {
	env := newTestAPI(t, panicQuerier{}, nil)
	w := env.get(t, "/v1/audit-events")
	if w.Code != 500 || strings.TrimSpace(w.Body.String()) != `{"code":"FLK-9999","title":"Internal Server Error","message":"internal server error"}` {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if testutil.ToFloat64(env.api.metrics.requests.WithLabelValues("list", "500")) != 1 {
		t.Fatal("500 not counted")
	}
}

func TestUIConfig(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(), func(o *Options) {
		o.ActorNames = map[string]string{"key:3f9a1c2b4d5e6f70": "ci-bot"}
	})
	if w := env.do(t, http.MethodGet, "/audit-trail/config.json", nil); w.Code != 401 {
		t.Fatalf("unauthenticated config: %d", w.Code)
	}
	w := env.get(t, "/audit-trail/config.json")
	var cfg UIConfig
	if err := json.Unmarshal(w.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.AuthMode != AuthModeAPIKey || cfg.ActorNames["key:3f9a1c2b4d5e6f70"] != "ci-bot" {
		t.Fatalf("config %+v", cfg)
	}
	var groups []string
	seen := 0
	for _, g := range cfg.EventTypes {
		groups = append(groups, g.Group)
		seen += len(g.Types)
	}
	if strings.Join(groups, ",") != "Workflow,Execution,Provider,Other" || seen != len(chain.EventTypes) {
		t.Fatalf("groups %v with %d types", groups, seen)
	}
	if g := cfg.EventTypes[0].Types[0]; g.Value != chain.WorkflowCreated || g.Label != "Workflow Created" || g.Family != "workflow" {
		t.Fatalf("first type %+v", g)
	}
	if g := cfg.EventTypes[2].Types[0]; g.Label != "Provider Config Created" {
		t.Fatalf("provider label %+v", g)
	}
}

func TestMetrics(t *testing.T) {
	events := testEvents(30)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	env.get(t, "/v1/audit-events")
	env.get(t, "/v1/audit-events?limit=x")
	env.get(t, "/v1/audit-events/"+events[2].EventID)
	env.get(t, "/v1/audit-events/"+events[2].EventID+"/verify")
	env.get(t, "/audit-trail/config.json")
	env.do(t, http.MethodGet, "/v1/audit-events", nil)
	for _, c := range []struct {
		endpoint, code string
	}{{"list", "200"}, {"list", "400"}, {"list", "401"}, {"get", "200"}, {"verify", "200"}, {"ui-config", "200"}} {
		if v := testutil.ToFloat64(env.api.metrics.requests.WithLabelValues(c.endpoint, c.code)); v != 1 {
			t.Errorf("requests{%s,%s} = %v", c.endpoint, c.code, v)
		}
	}
	n, err := testutil.GatherAndCount(env.reg, "flowker_audit_search_requests_total", "flowker_audit_search_duration_seconds", "flowker_audit_verify_failures_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != 6+4+1 {
		t.Fatalf("%d series", n)
	}
	// One API per registry.
	if _, err := New(Options{Querier: func(context.Context) (sink.Querier, error) { return nil, nil }, CursorKey: testCursorKey, Registerer: env.reg}); err == nil {
		t.Fatal("second registration accepted")
	}
}

func TestNewValidates(t *testing.T) {
	q := func(context.Context) (sink.Querier, error) { return nil, nil }
	for _, o := range []Options{{CursorKey: testCursorKey}, {Querier: q}, {Querier: q, CursorKey: []byte("short")}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := New(Options{Querier: q, CursorKey: testCursorKey}); err != nil {
		t.Fatal(err)
	}
}

func ExampleEventLabel() {
	fmt.Println(EventLabel(chain.ProviderConfigCreated), EventFamily(chain.ProviderConfigCreated))
	// Output: Provider Config Created provider
}

// oldPlugin drops the actor filters, as a sink plugin built before they existed does (protobuf
// ignores the unknown fields).
type oldPlugin struct{ sink.Querier }

func (o oldPlugin) Search(ctx context.Context, q sink.Query) (sink.Page, error) {
	q.Filter.ActorType, q.Filter.ActorID = "", ""
	return o.Querier.Search(ctx, q)
}

func TestSinkIgnoringActorFilterIs503(t *testing.T) {
	events := testEvents(60)
	env := newTestAPI(t, oldPlugin{auditapitest.NewStore(events...)}, nil)
	if w := env.get(t, "/v1/audit-events?actorType=system"); w.Code != 503 || decodeError(t, w).Code != CodeStoreUnavailable {
		t.Fatalf("actor filter through a sink that ignores it: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(env.logs.String(), "ignored a filter") {
		t.Fatalf("not logged: %s", env.logs)
	}
	if w := env.get(t, "/v1/audit-events?eventType=WORKFLOW_CREATED"); w.Code != 200 {
		t.Fatalf("a filter the sink knows: %d %s", w.Code, w.Body)
	}
}
