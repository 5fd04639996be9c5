// Package httpx holds small net/http helpers shared by the proxy, the audit API and the fake
// Flowker.
package httpx

import (
	"net/http"
	"time"
)

// StatusClientClosed is the status recorded when nothing was written because the client went
// away (nginx's convention; never sent).
const StatusClientClosed = 499

// StatusRecorder wraps a ResponseWriter and remembers the final status code and when the
// headers were written. Informational (1xx) responses are passed on and not recorded.
// http.ResponseController reaches the wrapped writer through Unwrap (flushes, deadlines,
// hijacking).
type StatusRecorder struct {
	http.ResponseWriter
	// Now is the clock that stamps Written; nil means time.Now.
	Now func() time.Time

	status  int
	written time.Time
}

// NewStatusRecorder wraps w, stamping times with now (nil: time.Now).
func NewStatusRecorder(w http.ResponseWriter, now func() time.Time) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Now: now}
}

func (s *StatusRecorder) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// WriteHeader implements http.ResponseWriter.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status, s.written = code, s.now()
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status, s.written = http.StatusOK, s.now()
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the wrapped writer does.
func (s *StatusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Status returns the status written so far, or 0 when nothing was written.
func (s *StatusRecorder) Status() int { return s.status }

// Code returns the status written, or StatusClientClosed when nothing was.
func (s *StatusRecorder) Code() int {
	if s.status == 0 {
		return StatusClientClosed
	}
	return s.status
}

// HeaderTime returns how long after start the headers were written, or the time since start
// when they were not (yet).
func (s *StatusRecorder) HeaderTime(start time.Time) time.Duration {
	if s.written.IsZero() {
		return s.now().Sub(start)
	}
	return s.written.Sub(start)
}
