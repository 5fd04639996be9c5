package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// timedBody bounds the reading of a request body: each Read must make progress within idle, and
// the whole body must arrive within total. It sets the connection's read deadline (through
// http.ResponseController) before every Read and clears it once the body is done, so a client
// that sends headers and part of a body cannot keep its connection — and the upstream one the
// body is streamed into — open indefinitely.
type timedBody struct {
	rc          io.ReadCloser
	rctl        *http.ResponseController
	idle, total time.Duration
	deadline    time.Time // start + total

	mu      sync.Mutex
	expired string // "idle" or "total" once a deadline stopped the body
	done    bool
}

func newTimedBody(w http.ResponseWriter, rc io.ReadCloser, idle, total time.Duration, now time.Time) *timedBody {
	return &timedBody{rc: rc, rctl: http.NewResponseController(w), idle: idle, total: total, deadline: now.Add(total)}
}

// errBodyTimeout is what a Read returns once a body deadline passed.
var errBodyTimeout = errors.New("request body not received in time")

func (b *timedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.expired != "" || b.done {
		b.mu.Unlock()
		if b.expired != "" {
			return 0, errBodyTimeout
		}
		return 0, io.EOF
	}
	b.mu.Unlock()
	now := time.Now()
	d, which := now.Add(b.idle), "idle"
	if b.deadline.Before(d) {
		d, which = b.deadline, "total"
	}
	_ = b.rctl.SetReadDeadline(d) // not supported (tests with recorders): the body reads unbounded
	n, err := b.rc.Read(p)
	if err != nil {
		b.mu.Lock()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.expired = which
			err = errBodyTimeout
		} else {
			b.done = true
		}
		b.mu.Unlock()
		b.clear()
	}
	return n, err
}

// clear removes the read deadline: after the body, the server's own reads (the next request,
// the background read that notices a client going away) must not trip over it.
func (b *timedBody) clear() { _ = b.rctl.SetReadDeadline(time.Time{}) }

func (b *timedBody) Close() error {
	b.mu.Lock()
	expired := b.expired != ""
	b.mu.Unlock()
	if !expired {
		b.clear()
	}
	return b.rc.Close()
}

// timedOut says which deadline stopped the body ("" when none did).
func (b *timedBody) timedOut() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.expired
}

type bodyKey struct{}

// bodyTimedOut reports which body deadline stopped r's body, if any.
func bodyTimedOut(r *http.Request) string {
	if b, ok := r.Context().Value(bodyKey{}).(*timedBody); ok {
		return b.timedOut()
	}
	return ""
}

// writeTimeout answers like Flowker's server (fasthttp) on a request that did not arrive in
// time: 408, in Fiber's framework error format, and the connection closed.
func writeTimeout(w http.ResponseWriter, which string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusRequestTimeout)
	_, _ = io.WriteString(w, `{"code":408,"title":"request_failed","message":"Request Timeout: the request body was not received in time (`+which+`)"}`+"\n")
}
