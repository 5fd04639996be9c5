package fakeflowker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The read queries the sidecar's intent recovery makes, as the real Flowker v1.0.2 answers them
// (each case was run against it; docs/FLOWKER-BEHAVIOUR.md lists the requests and answers).
// The fake must answer them alike. With REAL_FLOWKER_URL (and
// REAL_FLOWKER_KEY) the same test runs against a real Flowker instead; nothing else may create
// resources there meanwhile (the order checks assume it): run with go test -p 1.

type rq struct {
	t    *testing.T
	base string
	key  string
}

type rqAnswer struct {
	status int
	raw    string
	body   struct {
		Code       string           `json:"code"`
		Message    string           `json:"message"`
		Items      []map[string]any `json:"items"`
		NextCursor string           `json:"nextCursor"`
		HasMore    bool             `json:"hasMore"`
	}
	obj map[string]any
}

func (q rq) do(method, path, body string, hdr ...string) rqAnswer {
	q.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, q.base+path, rd)
	if err != nil {
		q.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-API-Key", q.key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		q.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := rqAnswer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	_ = json.Unmarshal(raw, &a.obj)
	return a
}

func (q rq) must(want int, method, path, body string, hdr ...string) rqAnswer {
	q.t.Helper()
	a := q.do(method, path, body, hdr...)
	if a.status != want {
		q.t.Fatalf("%s %s: %d %s (want %d)", method, path, a.status, a.raw, want)
	}
	return a
}

func recoveryTarget(t *testing.T) rq {
	if u := os.Getenv("REAL_FLOWKER_URL"); u != "" {
		t.Logf("against the real Flowker at %s", u)
		return rq{t: t, base: strings.TrimRight(u, "/"), key: os.Getenv("REAL_FLOWKER_KEY")}
	}
	// A clock that moves on every call: the fixtures get distinct times, as they do on a real
	// Flowker (ties sort by id there as here).
	s := New(Options{APIKey: testAPIKey, ExecutionDelay: 20 * time.Millisecond, Now: newStepClock().Now})
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return rq{t: t, base: ts.URL, key: testAPIKey}
}

func names(a rqAnswer) []string {
	var n []string
	for _, it := range a.body.Items {
		s, _ := it["name"].(string)
		n = append(n, s)
	}
	return n
}

func msTimes(t *testing.T, a rqAnswer, field string) []time.Time {
	t.Helper()
	var ts []time.Time
	for _, it := range a.body.Items {
		s, _ := it[field].(string)
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !strings.HasSuffix(s, "Z") || v.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("%s %q: not RFC 3339 UTC with millisecond precision (%v)", field, s, err)
		}
		ts = append(ts, v)
	}
	return ts
}

func descending(ts []time.Time) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i].After(ts[i-1]) {
			return false
		}
	}
	return true
}

// TestRecoveryQueriesAnswerAsTheRealFlowker: the list filters, sorts, cursors, 404s and the
// idempotency-key lookup that recovery relies on.
func TestRecoveryQueriesAnswerAsTheRealFlowker(t *testing.T) {
	q := recoveryTarget(t)
	run := uuid.NewString()[:8]
	name := func(s string) string { return "rq-" + run + "-" + s }

	// Fixtures: 5 workflows (one active with a webhook trigger), 3 tracer provider configs, and
	// 4 executions of the active workflow.
	var wfs []string
	for i := range 5 {
		body := fmt.Sprintf(`{"name":%q}`, name(fmt.Sprintf("wf-%d", i)))
		if i == 4 {
			body = fmt.Sprintf(`{"name":%q,"nodes":[{"id":"t","type":"trigger","position":{"x":0,"y":0},"data":{"triggerType":"webhook","path":"/rq-%s","method":"POST"}}]}`, name("wf-4"), run)
		}
		a := q.must(http.StatusCreated, "POST", "/v1/workflows", body)
		created, _ := a.obj["createdAt"].(string)
		if _, ok := a.obj["workflowId"].(string); !ok || !strings.HasSuffix(created, "Z") {
			t.Fatalf("create answer %s: want workflowId and a UTC createdAt", a.raw)
		}
		wfs = append(wfs, a.obj["workflowId"].(string))
	}
	active := wfs[4]
	q.must(http.StatusOK, "POST", "/v1/workflows/"+active+"/activate", "")
	for i := range 3 {
		q.must(http.StatusCreated, "POST", "/v1/provider-configurations",
			fmt.Sprintf(`{"name":%q,"providerId":"tracer","config":{"base_url":"http://127.0.0.1:9/t","api_key":"k%d"}}`, name(fmt.Sprintf("pc-%d", i)), i))
	}
	var execs []string
	for i := range 4 {
		a := q.must(http.StatusCreated, "POST", "/v1/workflows/"+active+"/executions", `{"inputData":{}}`, "Idempotency-Key", name(fmt.Sprintf("key-%d", i)))
		execs = append(execs, a.obj["executionId"].(string))
	}

	t.Run("workflows: newest first by createdAt, id not workflowId, millisecond UTC times", func(t *testing.T) {
		a := q.must(http.StatusOK, "GET", "/v1/workflows?limit=3&sortBy=createdAt&sortOrder=DESC", "")
		if len(a.body.Items) != 3 || !a.body.HasMore || a.body.NextCursor == "" {
			t.Fatalf("page: %s", a.raw)
		}
		if got := names(a); got[0] != name("wf-4") || got[2] != name("wf-2") {
			t.Fatalf("order %v", got)
		}
		if _, ok := a.body.Items[0]["id"].(string); !ok || a.body.Items[0]["workflowId"] != nil {
			t.Fatalf("item keys: %v", a.body.Items[0])
		}
		if !descending(msTimes(t, a, "createdAt")) {
			t.Fatal("not newest first")
		}
		msTimes(t, a, "updatedAt")
		raw, err := base64.StdEncoding.DecodeString(a.body.NextCursor)
		if err != nil || !strings.Contains(string(raw), `"sb":"createdAt","so":"DESC"`) {
			t.Fatalf("cursor %s (%v)", raw, err)
		}
		// The next page: the sort is taken from the query again (resent here).
		b := q.must(http.StatusOK, "GET", "/v1/workflows?limit=2&sortBy=createdAt&sortOrder=DESC&cursor="+a.body.NextCursor, "")
		if got := names(b); len(got) != 2 || got[0] != name("wf-1") || got[1] != name("wf-0") {
			t.Fatalf("second page %v", got)
		}
		// The cursor's own sort is ignored: sortOrder=ASC walks up from the cursor.
		c := q.must(http.StatusOK, "GET", "/v1/workflows?limit=2&sortOrder=ASC&cursor="+a.body.NextCursor, "")
		if got := names(c); len(got) != 2 || got[0] != name("wf-3") || got[1] != name("wf-4") {
			t.Fatalf("ASC from a DESC cursor %v", got)
		}
	})
	t.Run("workflows: no name filter, lenient status/limit/sort", func(t *testing.T) {
		a := q.must(http.StatusOK, "GET", "/v1/workflows?limit=2&name="+name("wf-0"), "")
		if got := names(a); got[0] != name("wf-4") {
			t.Fatalf("name filter honoured? %v", got)
		}
		a = q.must(http.StatusOK, "GET", "/v1/workflows?limit=100&status=active", "")
		found := false
		for _, it := range a.body.Items {
			if it["status"] != "active" {
				t.Fatalf("status filter: %v", it)
			}
			found = found || it["id"] == active
		}
		if !found {
			t.Fatal("the active workflow is not listed")
		}
		if a := q.must(http.StatusOK, "GET", "/v1/workflows?status=bogus", ""); len(a.body.Items) != 0 {
			t.Fatalf("status=bogus: %s", a.raw)
		}
		for _, l := range []string{"abc", "0", "-5"} {
			if a := q.must(http.StatusOK, "GET", "/v1/workflows?limit="+l, ""); len(a.body.Items) != 5 && len(a.body.Items) != 10 {
				t.Fatalf("limit=%s: %d items", l, len(a.body.Items))
			}
		}
		// Lower-case sortOrder is not ASC: still newest first.
		if a := q.must(http.StatusOK, "GET", "/v1/workflows?limit=3&sortOrder=asc", ""); names(a)[0] != name("wf-4") {
			t.Fatalf("sortOrder=asc: %v", names(a))
		}
		if a := q.must(http.StatusOK, "GET", "/v1/workflows?limit=3&sortBy=bogus", ""); names(a)[0] != name("wf-4") {
			t.Fatalf("sortBy=bogus: %v", names(a))
		}
		if a := q.do("GET", "/v1/workflows?cursor=garbage", ""); a.status != http.StatusBadRequest || a.body.Code != "INVALID_CURSOR" {
			t.Fatalf("bad cursor: %d %s", a.status, a.raw)
		}
	})
	t.Run("provider configurations: providerId honoured, strict limit/status, lower-case sortOrder is a 500", func(t *testing.T) {
		a := q.must(http.StatusOK, "GET", "/v1/provider-configurations?providerId=tracer&limit=2&sortBy=createdAt&sortOrder=DESC", "")
		if got := names(a); len(got) != 2 || got[0] != name("pc-2") || !a.body.HasMore {
			t.Fatalf("page %v %s", got, a.raw)
		}
		for _, it := range a.body.Items {
			if it["providerId"] != "tracer" {
				t.Fatalf("providerId filter: %v", it)
			}
		}
		if !descending(msTimes(t, a, "createdAt")) {
			t.Fatal("not newest first")
		}
		b := q.must(http.StatusOK, "GET", "/v1/provider-configurations?providerId=tracer&limit=1&sortBy=createdAt&sortOrder=DESC&cursor="+a.body.NextCursor, "")
		if got := names(b); len(got) != 1 || got[0] != name("pc-0") {
			t.Fatalf("second page %v", got)
		}
		if a := q.must(http.StatusOK, "GET", "/v1/provider-configurations?providerId=nope-"+run, ""); len(a.body.Items) != 0 {
			t.Fatalf("providerId=nope: %s", a.raw)
		}
		for _, c := range []struct{ query, code string }{
			{"limit=101", "FLK-0304"}, {"limit=abc", "FLK-0304"}, {"status=bogus", "FLK-0304"},
		} {
			if a := q.do("GET", "/v1/provider-configurations?"+c.query, ""); a.status != http.StatusBadRequest || a.body.Code != c.code {
				t.Fatalf("%s: %d %s", c.query, a.status, a.raw)
			}
		}
		for _, so := range []string{"asc", "desc"} {
			if a := q.do("GET", "/v1/provider-configurations?sortOrder="+so, ""); a.status != http.StatusInternalServerError || a.body.Code != "FLK-9999" {
				t.Fatalf("sortOrder=%s: %d %s", so, a.status, a.raw)
			}
		}
	})
	t.Run("executions: workflowId honoured, the cursor carries the sort (sortBy/sortOrder beside it is a 400)", func(t *testing.T) {
		a := q.must(http.StatusOK, "GET", "/v1/executions?workflowId="+active+"&limit=3&sortBy=startedAt&sortOrder=DESC", "")
		if len(a.body.Items) != 3 || !a.body.HasMore {
			t.Fatalf("page %s", a.raw)
		}
		for _, it := range a.body.Items {
			if it["workflowId"] != active {
				t.Fatalf("workflowId filter: %v", it)
			}
		}
		if !descending(msTimes(t, a, "startedAt")) {
			t.Fatal("not newest first")
		}
		for _, extra := range []string{"&sortBy=startedAt&sortOrder=DESC", "&sortOrder=ASC", "&sortBy=startedAt"} {
			b := q.do("GET", "/v1/executions?workflowId="+active+"&limit=3&cursor="+a.body.NextCursor+extra, "")
			if b.status != http.StatusBadRequest || b.body.Code != "FLK-0304" || !strings.Contains(b.body.Message, "cursor already contains sort configuration") {
				t.Fatalf("cursor with %s: %d %s", extra, b.status, b.raw)
			}
		}
		b := q.must(http.StatusOK, "GET", "/v1/executions?workflowId="+active+"&limit=3&cursor="+a.body.NextCursor, "")
		if len(b.body.Items) != 1 || b.body.Items[0]["executionId"] != execs[0] || b.body.HasMore {
			t.Fatalf("second page %s", b.raw)
		}
		for _, c := range []struct{ query, code string }{
			{"workflowId=not-a-uuid", "FLK-0002"}, {"limit=101", "FLK-0309"}, {"sortBy=createdAt", "FLK-0304"}, {"status=bogus", "FLK-0304"},
		} {
			if a := q.do("GET", "/v1/executions?"+c.query, ""); a.status != http.StatusBadRequest || a.body.Code != c.code {
				t.Fatalf("%s: %d %s", c.query, a.status, a.raw)
			}
		}
		// Unknown filters are ignored (there is no idempotency-key filter).
		if a := q.must(http.StatusOK, "GET", "/v1/executions?workflowId="+active+"&idempotencyKey=nope&limit=100", ""); len(a.body.Items) != 4 {
			t.Fatalf("idempotencyKey filter honoured? %d items", len(a.body.Items))
		}
	})
	t.Run("one resource: 404 with the collection's own code", func(t *testing.T) {
		missing := "6f1c1f3e-0000-4000-8000-000000000001"
		for _, c := range []struct{ path, code string }{
			{"/v1/workflows/" + missing, "FLK-0100"}, {"/v1/provider-configurations/" + missing, "FLK-0290"}, {"/v1/executors/" + missing, "FLK-0250"},
		} {
			if a := q.do("GET", c.path, ""); a.status != http.StatusNotFound || a.body.Code != c.code {
				t.Fatalf("%s: %d %s", c.path, a.status, a.raw)
			}
		}
		if a := q.do("GET", "/v1/workflows/not-a-uuid", ""); a.status != http.StatusBadRequest || a.body.Code != "FLK-0002" {
			t.Fatalf("bad id: %d %s", a.status, a.raw)
		}
	})
	t.Run("the idempotency-key lookup: a start on the nil workflow finds the key's execution and creates nothing", func(t *testing.T) {
		probe := "/v1/workflows/00000000-0000-0000-0000-000000000000/executions"
		before := q.must(http.StatusOK, "GET", "/v1/executions?workflowId="+active+"&limit=100", "")
		a := q.do("POST", probe, `{"inputData":{}}`, "Idempotency-Key", name("key-2"))
		if (a.status != http.StatusOK && a.status != http.StatusCreated) || a.obj["executionId"] != execs[2] || a.obj["workflowId"] != active {
			t.Fatalf("used key: %d %s", a.status, a.raw)
		}
		if a := q.do("POST", probe, `{"inputData":{}}`, "Idempotency-Key", "  "+name("key-2")+"  "); a.obj["executionId"] != execs[2] {
			t.Fatalf("padded key (Flowker trims it): %d %s", a.status, a.raw)
		}
		if a := q.do("POST", probe, `{"inputData":{}}`, "Idempotency-Key", name("unused")); a.status != http.StatusNotFound || a.body.Code != "FLK-0100" {
			t.Fatalf("unused key: %d %s", a.status, a.raw)
		}
		if a := q.do("POST", probe, "", "Idempotency-Key", name("key-2")); a.status != http.StatusBadRequest || a.body.Code != "FLK-0001" {
			t.Fatalf("no body: %d %s", a.status, a.raw)
		}
		after := q.must(http.StatusOK, "GET", "/v1/executions?workflowId="+active+"&limit=100", "")
		if len(after.body.Items) != len(before.body.Items) {
			t.Fatalf("the lookup created executions: %d then %d", len(before.body.Items), len(after.body.Items))
		}
	})
}
