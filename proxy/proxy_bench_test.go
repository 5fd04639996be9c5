package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProxyRead measures a passthrough GET through the proxy handler (with the proxy's
// real upstream transport over loopback) against the same GET sent straight to the upstream.
func BenchmarkProxyRead(b *testing.B) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c5160020-5d68-4a05-b984-cef31de6428a","name":"w","status":"active"}`)
	})
	h := newHarness(b, up)
	defer h.front.Close()
	defer h.upstream.Close()
	path := "/v1/workflows/c5160020-5d68-4a05-b984-cef31de6428a"
	for _, tc := range []struct{ name, base string }{{"direct", h.upstream.URL}, {"sidecar", h.front.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(tc.base + path)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkHandlerRead measures the proxy handler alone for a GET (no client, in-process recorder).
func BenchmarkHandlerRead(b *testing.B) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) })
	h := newHarness(b, up)
	defer h.front.Close()
	defer h.upstream.Close()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/v1/workflows/c5160020-5d68-4a05-b984-cef31de6428a", nil)
		w := httptest.NewRecorder()
		h.proxy.ServeHTTP(w, r)
	}
}

// BenchmarkHandlerAuditedWrite measures the proxy handler alone for an audited POST (intent,
// forwarding over loopback, event; journal without fsync): the CPU the write path costs.
func BenchmarkHandlerAuditedWrite(b *testing.B) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"workflowId":"c5160020-5d68-4a05-b984-cef31de6428a","version":"1.0.0","status":"draft","createdAt":"2026-12-07T00:00:00Z"}`)
	})
	h := newHarness(b, up)
	defer h.front.Close()
	defer h.upstream.Close()
	body := `{"name":"bench","description":"` + strings.Repeat("d", 800) + `","nodes":[{"id":"t","type":"trigger","data":{"triggerType":"webhook","path":"/w/bench","method":"POST"}}]}`
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "/v1/workflows", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.proxy.ServeHTTP(w, r)
			if w.Code != http.StatusCreated {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
