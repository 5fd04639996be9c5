package auditapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func TestAccessLog(t *testing.T) {
	events := testEvents(300)
	fpKey := []byte("fingerprint-key-0123456789abcdef")
	caller := identity.Fingerprint(fpKey, testKey)
	access := &syncbuf.Buffer{}
	env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) {
		o.Caller = FingerprintCaller(fpKey)
		o.ActorNames = map[string]string{caller: "compliance-team"}
		o.AccessLogger = slog.New(slog.NewJSONHandler(access, nil))
	})
	env.get(t, "/v1/audit-events?actorType=user&limit=7&sortOrder=ASC")
	env.get(t, "/v1/audit-events/"+events[3].EventID)
	env.get(t, ExportPath+"?format=csv&eventType=WORKFLOW_UPDATED")
	r := httptest.NewRequest(http.MethodGet, "/v1/audit-events", nil)
	r.Header.Set(HeaderAPIKey, "a-wrong-key")
	env.api.ServeHTTP(httptest.NewRecorder(), r)
	env.get(t, OpenAPIPath) // documentation, not the trail: not logged

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(access.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d access lines, want 4:\n%s", len(lines), access)
	}
	list := lines[0]
	if list["msg"] != "audit trail read" || list["caller"] != caller || list["caller_name"] != "compliance-team" ||
		list["endpoint"] != "list" || list["status"] != float64(200) || list["rows"] != float64(7) {
		t.Fatalf("list line %v", list)
	}
	if f, _ := list["filters"].(map[string]any); f["actorType"] != "user" || f["limit"] != "7" || f["sortOrder"] != "ASC" {
		t.Fatalf("list filters %v", list["filters"])
	}
	if g := lines[1]; g["endpoint"] != "get" || g["rows"] != float64(1) || g["event_id"] != events[3].EventID {
		t.Fatalf("get line %v", g)
	}
	wantExport := 0
	for i := range events {
		if events[i].EventType == "WORKFLOW_UPDATED" {
			wantExport++
		}
	}
	if x := lines[2]; x["endpoint"] != "export" || x["rows"] != float64(wantExport) || x["filters"].(map[string]any)["format"] != "csv" {
		t.Fatalf("export line %v", x)
	}
	if d := lines[3]; d["status"] != float64(401) || d["caller"] != identity.Fingerprint(fpKey, "a-wrong-key") || d["caller_name"] != nil {
		t.Fatalf("refused line %v", d)
	}
	if strings.Contains(access.String(), testKey) || strings.Contains(access.String(), "a-wrong-key") {
		t.Fatal("a credential reached the access log")
	}
	m := env.api.access
	if got := testutil.ToFloat64(m.calls.WithLabelValues("compliance-team", "list", "200")); got != 1 {
		t.Fatalf("calls{list} = %v", got)
	}
	if got := testutil.ToFloat64(m.rows.WithLabelValues("compliance-team", "export")); got != float64(wantExport) {
		t.Fatalf("rows{export} = %v, want %d", got, wantExport)
	}
}

func TestAccessCallerLabelsBounded(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(), nil)
	for i := range maxCallerLabels + 10 {
		r := httptest.NewRequest(http.MethodGet, "/v1/audit-events", nil)
		r.Header.Set(HeaderAPIKey, strings.Repeat("x", i+1))
		env.api.ServeHTTP(httptest.NewRecorder(), r)
	}
	if got := testutil.ToFloat64(env.api.access.calls.WithLabelValues("other", "list", "401")); got != 10 {
		t.Fatalf("other = %v, want 10", got)
	}
}

// TestOnReadAndAccessTrail: OnRead sees each authenticated call once (both trails, the page's
// configuration too), never a refused call or the public OpenAPI document; the access trail's
// routes answer from AccessQuerier, and are not the API's at all without it.
func TestOnReadAndAccessTrail(t *testing.T) {
	events := testEvents(30)
	accessEvents := sinktest.GenerateChain("chain-access", 5, sinktest.GenOptions{Seed: 7, Start: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)})
	var reads []Read
	env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) {
		o.AccessQuerier = func(context.Context) (sink.Querier, error) { return auditapitest.NewStore(accessEvents...), nil }
		o.OnRead = func(_ context.Context, r Read) { reads = append(reads, r) }
	})
	if got := decodeList(t, env.get(t, "/v1/audit-events?limit=4&sortOrder=ASC")); len(got.Items) != 4 {
		t.Fatalf("search: %d events", len(got.Items))
	}
	if got := decodeList(t, env.get(t, AccessBasePath+"?limit=100")); len(got.Items) != 5 {
		t.Fatalf("access trail: %d events, want its own 5", len(got.Items))
	}
	if w := env.get(t, AccessBasePath+"/"+accessEvents[2].EventID); w.Code != 200 || !strings.Contains(w.Body.String(), accessEvents[2].EventID) {
		t.Fatalf("access get: %d", w.Code)
	}
	if w := env.get(t, AccessBasePath+"/"+events[2].EventID); w.Code != 404 {
		t.Fatalf("an audit event under the access trail: %d, want 404", w.Code)
	}
	env.get(t, UIConfigPath)
	env.get(t, OpenAPIPath)
	r := httptest.NewRequest(http.MethodGet, "/v1/audit-events", nil)
	r.Header.Set(HeaderAPIKey, "a-wrong-key")
	env.api.ServeHTTP(httptest.NewRecorder(), r)

	want := []struct {
		endpoint string
		status   int
		event    string
	}{{"list", 200, ""}, {"access-list", 200, ""}, {"access-get", 200, accessEvents[2].EventID}, {"access-get", 404, events[2].EventID}, {"ui-config", 200, ""}}
	if len(reads) != len(want) {
		t.Fatalf("%d reads, want %d: %+v", len(reads), len(want), reads)
	}
	for i, w := range want {
		if g := reads[i]; g.Endpoint != w.endpoint || g.Status != w.status || g.EventID != w.event || g.Method != http.MethodGet || !strings.HasPrefix(g.Caller, "key:") {
			t.Errorf("read %d: %+v, want %+v", i, g, w)
		}
	}
	if f := reads[0].Filters; f["limit"] != "4" || f["sortOrder"] != "ASC" || reads[0].Rows != 4 {
		t.Errorf("search read: %+v", reads[0])
	}

	off := newTestAPI(t, auditapitest.NewStore(events...), nil)
	if off.api.Match(httptest.NewRequest(http.MethodGet, AccessBasePath, nil)) {
		t.Fatal("the access trail is matched without AccessQuerier")
	}
	if !env.api.Match(httptest.NewRequest(http.MethodGet, AccessBasePath+"/export", nil)) {
		t.Fatal("the access trail's export is not matched")
	}
}
