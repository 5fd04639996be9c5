package auditapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/proxy/identity"
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
