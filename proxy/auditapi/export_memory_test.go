package auditapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// genQuerier serves n generated events of one chain, oldest first, without storing them: the
// export's memory is then all that grows with n.
type genQuerier struct {
	sink.Querier
	n     uint64
	start time.Time
}

func (g genQuerier) event(i uint64) chain.Event {
	return chain.Event{
		EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), EventType: chain.WorkflowUpdated, Action: chain.ActionUpdate,
		Result: chain.ResultSuccess, ResourceID: "5f9e6132-c483-43c3-95b3-d41e18dbe830", ResourceType: chain.ResourceWorkflow,
		Actor:     chain.Actor{Type: chain.ActorAPIKey, ID: "key:cfd1ee4c07e8", IPAddress: "10.0.3.7"},
		Context:   []byte(`{"auth": {"method": "api_key", "verified": false}, "method": "PATCH", "path": "/v1/workflows/5f9e6132-c483-43c3-95b3-d41e18dbe830", "status": 200}`),
		Metadata:  []byte(`{"workflow.name": "nightly settlement reconciliation"}`),
		Timestamp: g.start.Add(time.Duration(i) * time.Microsecond), Hash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		ChainID: "gen", Sequence: i + 1,
	}
}

func (g genQuerier) Search(_ context.Context, q sink.Query) (sink.Page, error) {
	if q.Order != sink.Asc {
		return sink.Page{}, fmt.Errorf("genQuerier: ASC only")
	}
	next := uint64(0)
	if q.After != nil {
		next = q.After.Sequence // sequence i+1 is event i: the next one is index Sequence
	}
	var p sink.Page
	for i := next; i < g.n && len(p.Events) < q.Limit; i++ {
		p.Events = append(p.Events, g.event(i))
	}
	p.More = next+uint64(len(p.Events)) < g.n
	return p, nil
}

// countingWriter is a ResponseWriter that keeps only counts, and samples the heap as bytes come.
type countingWriter struct {
	h         http.Header
	status    int
	bytes     int64
	lines     int64
	nextProbe int64
	peakHeap  uint64
}

func (w *countingWriter) Header() http.Header { return w.h }
func (w *countingWriter) WriteHeader(s int)   { w.status = s }
func (w *countingWriter) Flush()              {}
func (w *countingWriter) Write(b []byte) (int, error) {
	w.bytes += int64(len(b))
	w.lines += int64(bytes.Count(b, []byte{'\n'}))
	if w.bytes >= w.nextProbe {
		w.nextProbe = w.bytes + 32<<20
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		w.peakHeap = max(w.peakHeap, m.HeapInuse)
	}
	return len(b), nil
}

// TestExportMillionRowsBoundedMemory exports a million events and checks that the heap in use
// never grows past a bound far below the export's size (about 400 MB of NDJSON).
func TestExportMillionRowsBoundedMemory(t *testing.T) {
	// A million events without the race detector; under it (CI's go test -race) a quarter of
	// that, because instrumented encoding takes minutes per million on two shared cores. The
	// bound does not depend on n: the heap is the same at both sizes.
	n := uint64(1_000_000)
	if testing.Short() || raceEnabled {
		n = 250_000
	}
	g := genQuerier{n: n, start: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	const bound = 64 << 20
	for _, format := range []string{"ndjson", "csv"} {
		g := g
		if format == "csv" && raceEnabled {
			g.n = min(g.n, 50_000) // the CSV path differs only in the encoder
		}
		env := newTestAPI(t, g, nil)
		runtime.GC()
		w := &countingWriter{h: http.Header{}}
		r := httptest.NewRequest(http.MethodGet, ExportPath+"?sortOrder=ASC&format="+format, nil)
		r.Header.Set(HeaderAPIKey, testKey)
		env.api.ServeHTTP(w, r)
		want := int64(g.n) + 1 // the CSV header, or the NDJSON header...
		if format == "ndjson" {
			want += 2 // ...the chain line and the end line
		}
		if w.status != 200 || w.lines != want {
			t.Fatalf("%s: status %d, %d lines, want %d", format, w.status, w.lines, want)
		}
		t.Logf("%s: %d events, %d MB written, peak heap in use %d MB", format, g.n, w.bytes>>20, w.peakHeap>>20)
		if w.peakHeap > bound {
			t.Fatalf("%s: heap in use reached %d MB exporting %d MB: not bounded", format, w.peakHeap>>20, w.bytes>>20)
		}
	}
}
