package auditapi

import (
	"context"
	"encoding/json"
	"github.com/flowker-audit/flowker-audit/internal/syncbuf"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

const testKey = "test-audit-key-0123456789"

var testCursorKey = []byte("0123456789abcdef0123456789abcdef")

type testEnv struct {
	api  *API
	reg  *prometheus.Registry
	logs *syncbuf.Buffer
}

// newTestAPI builds an API over q with a static key; mod may change the options.
func newTestAPI(t testing.TB, q sink.Querier, mod func(*Options)) *testEnv {
	t.Helper()
	keys, err := NewStaticKeys([]string{testKey})
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}}
	opts := Options{
		Querier:    func(context.Context) (sink.Querier, error) { return q, nil },
		Auth:       keys,
		CursorKey:  testCursorKey,
		Registerer: env.reg,
		Logger:     slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	env.api, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// get sends an authenticated GET.
func (e *testEnv) get(t testing.TB, target string) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, http.MethodGet, target, map[string]string{HeaderAPIKey: testKey})
}

func (e *testEnv) do(t testing.TB, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if !e.api.Match(r) {
		t.Fatalf("%s %s: not matched", method, target)
	}
	e.api.ServeHTTP(w, r)
	return w
}

type listResponse struct {
	Items      []chain.Event `json:"items"`
	NextCursor string        `json:"nextCursor"`
	HasMore    bool          `json:"hasMore"`
}

func decodeList(t testing.TB, w *httptest.ResponseRecorder) listResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	var l listResponse
	if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
		t.Fatalf("decode list: %v\n%s", err, w.Body)
	}
	if l.Items == nil {
		t.Fatalf("items is not an array: %s", w.Body)
	}
	return l
}

type errorBody struct {
	Code    any    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

func decodeError(t testing.TB, w *httptest.ResponseRecorder) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("decode error body: %v\n%s", err, w.Body)
	}
	if e.Title == "" || e.Message == "" || e.Code == nil {
		t.Fatalf("error body lacks code/title/message: %s", w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	return e
}

// walk pages through a search until the last page and returns every item.
func (e *testEnv) walk(t testing.TB, query url.Values) []chain.Event {
	t.Helper()
	var all []chain.Event
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("too many pages")
		}
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		l := decodeList(t, e.get(t, "/v1/audit-events?"+q.Encode()))
		all = append(all, l.Items...)
		if l.HasMore != (l.NextCursor != "") {
			t.Fatalf("hasMore %v with nextCursor %q", l.HasMore, l.NextCursor)
		}
		if !l.HasMore {
			return all
		}
		if len(l.Items) == 0 {
			t.Fatal("hasMore on an empty page")
		}
		cursor = l.NextCursor
	}
}

// bruteForce returns the events matching f in order.
func bruteForce(events []chain.Event, f sink.Filter, order sink.Order) []chain.Event {
	var out []chain.Event
	for i := range events {
		if f.Matches(&events[i]) {
			out = append(out, events[i])
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := sink.PositionOf(&out[i]), sink.PositionOf(&out[j])
		if order == sink.Asc {
			return a.Less(b)
		}
		return b.Less(a)
	})
	return out
}

// testEvents returns a few thousand events over three interleaved chains (from sinktest when it
// generates, which shares timestamps across chains, exercising the chainId tie-break).
func testEvents(n int) []chain.Event {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var all []chain.Event
	for i, id := range []string{"chain-a", "chain-b", "chain-c"} {
		all = append(all, sinktest.GenerateChain(id, n/3, sinktest.GenOptions{Seed: 42, Start: start, Workflows: 12 + i})...)
	}
	return all
}

func sameIDs(t testing.TB, what string, got, want []chain.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].EventID != want[i].EventID {
			t.Fatalf("%s: item %d is %s (%s #%d), want %s (%s #%d)", what, i, got[i].EventID, got[i].ChainID, got[i].Sequence,
				want[i].EventID, want[i].ChainID, want[i].Sequence)
		}
	}
}
