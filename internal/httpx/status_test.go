package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestStatusRecorder(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	for _, tc := range []struct {
		name       string
		do         func(w http.ResponseWriter)
		status     int
		code       int
		headerTime time.Duration
	}{
		{"nothing written: the client went away", func(http.ResponseWriter) { clock = t0.Add(3 * time.Second) }, 0, StatusClientClosed, 3 * time.Second},
		{"write implies 200", func(w http.ResponseWriter) {
			clock = t0.Add(time.Second)
			_, _ = w.Write([]byte("x"))
			clock = t0.Add(9 * time.Second)
		}, 200, 200, time.Second},
		{"first status wins", func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, 404, 404, 0},
		{"1xx is passed on, not recorded", func(w http.ResponseWriter) { w.WriteHeader(103); clock = t0.Add(2 * time.Second); w.WriteHeader(201) }, 201, 201, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock = t0
			rw := httptest.NewRecorder()
			rec := NewStatusRecorder(rw, now)
			tc.do(rec)
			if rec.Status() != tc.status || rec.Code() != tc.code {
				t.Fatalf("status %d code %d, want %d %d", rec.Status(), rec.Code(), tc.status, tc.code)
			}
			if got := rec.HeaderTime(t0); got != tc.headerTime {
				t.Fatalf("header time %v, want %v", got, tc.headerTime)
			}
			if rec.Unwrap() != http.ResponseWriter(rw) {
				t.Fatal("Unwrap must return the wrapped writer")
			}
			rec.Flush()
			if !rw.Flushed {
				t.Fatal("Flush not passed on")
			}
		})
	}
}
