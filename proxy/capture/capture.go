// Package capture records what an audited exchange carried — sizes, SHA-256 digests and a capped,
// redacted rendering of JSON bodies — without ever buffering more than a bound, and without
// letting a secret reach the event.
//
// Redaction happens while the body is re-encoded token by token: a value whose key matches a
// secret-looking name (password, token, api_key, secret, authorization, ...) or whose dot path
// matches a redaction path (config.* for provider configurations) is replaced by "[REDACTED]"
// before anything is stored. Bodies that are not JSON are never rendered (only their size, type
// and digest are kept): their structure is unknown, so their secrets could not be found. A body
// cut by a cap or malformed part-way is rendered up to that point, still redacted, with its open
// containers closed, and marked truncated or invalid.
package capture

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// LooksJSON reports whether a body should be parsed as JSON: a JSON content type, or (whatever
// the declared type, since Flowker itself parses the body) a first non-space byte of { or [.
func LooksJSON(contentType string, prefix []byte) bool {
	if strings.Contains(strings.ToLower(contentType), "json") {
		return true
	}
	t := bytes.TrimLeft(prefix, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// Rendering is the outcome of rendering a JSON body.
type Rendering struct {
	JSON      json.RawMessage // nil when nothing could be rendered
	Truncated bool            // cut by the input or output budget
	Invalid   bool            // the input stopped being valid JSON part-way
	Redacted  bool            // at least one value was replaced by [REDACTED]
}

// ErrNotJSON is returned when the body does not start as JSON at all.
var ErrNotJSON = errors.New("body is not JSON")

// sanitize makes s storable as jsonb text: invalid UTF-8 and U+0000 (which PostgreSQL's jsonb
// rejects) become U+FFFD.
func sanitize(s string) string { return chain.CleanText(s, 0) }

// Sanitize is the exported form of sanitize for other event fields.
func Sanitize(s string) string { return sanitize(s) }

func encodeString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// Budget bounds the bytes that everything sharing it holds at once (the bodies of all audited
// requests in flight). It never blocks: a holder takes what is left and captures less. Holders
// take it in small steps as they hold bytes, never the most they could hold.
type Budget struct {
	avail   atomic.Int64
	total   int64
	changed func() // called after every change (keeps a gauge of held bytes current)
}

// OnChange registers f, called after every change of what is held. Call it before use.
func (b *Budget) OnChange(f func()) *Budget {
	b.changed = f
	return b
}

func (b *Budget) notify() {
	if b.changed != nil {
		b.changed()
	}
}

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget {
	b := &Budget{total: n}
	b.avail.Store(n)
	return b
}

// Take takes up to n bytes and returns how many it got.
func (b *Budget) Take(n int) int {
	for {
		a := b.avail.Load()
		got := min(int64(n), max(a, 0))
		if got == 0 {
			return 0
		}
		if b.avail.CompareAndSwap(a, a-got) {
			b.notify()
			return int(got)
		}
	}
}

// Force takes n bytes even past the bound (InUse may then exceed the total): for the small
// prefix every held response keeps, so the gauge of held bytes stays true.
func (b *Budget) Force(n int) { b.avail.Add(-int64(n)); b.notify() }

// Give returns n bytes.
func (b *Budget) Give(n int) {
	if n != 0 {
		b.avail.Add(int64(n))
		b.notify()
	}
}

// InUse is the number of bytes taken.
func (b *Budget) InUse() int64 { return b.total - b.avail.Load() }

// Tee wraps a body: it passes every byte through, keeps the first Limit bytes, and hashes and
// counts everything.
type Tee struct {
	mu    sync.Mutex // Summary may run while the transport still reads
	rc    io.ReadCloser
	limit int
	buf   []byte
	h     hash.Hash
	n     int64
	err   error
	eof   bool
	sum   string // the digest, once computed at EOF
}

// NewTee wraps rc (which may be nil or http.NoBody). It computes no digest until given a key.
func NewTee(rc io.ReadCloser, limit int) *Tee {
	return &Tee{rc: rc, limit: limit}
}

// WithDigestKey makes the Tee compute HMAC-SHA-256(key, body): a digest that proves a body was
// (or was not) a given value to whoever holds the key, and to nobody else. An unkeyed SHA-256 of
// a body whose secrets are redacted would let anyone who reads the trail test guesses of them.
func (t *Tee) WithDigestKey(key []byte) *Tee {
	t.h = keyedHash(key)
	return t
}

// keyed is the HMAC of the last key used, keyed once: every body's digest starts as a copy of it
// (keying hashes two blocks and allocates two digests; a copy does neither twice).
var keyed atomic.Pointer[keyedTemplate]

type keyedTemplate struct {
	key string
	h   hash.Cloner
}

func keyedHash(key []byte) hash.Hash {
	if t := keyed.Load(); t != nil && t.key == string(key) {
		if c, err := t.h.Clone(); err == nil {
			return c
		}
	}
	h := hmac.New(sha256.New, key)
	if c, ok := h.(hash.Cloner); ok {
		if tmpl, err := c.Clone(); err == nil {
			keyed.Store(&keyedTemplate{key: string(key), h: tmpl})
		}
	}
	return h
}

// Digest is the keyed digest of value, as events carry it (hex HMAC-SHA-256): what
// `flowker-audit audit-hash` prints.
func Digest(key, value []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))
}

// Read implements io.Reader.
func (t *Tee) Read(p []byte) (int, error) {
	if t.rc == nil {
		t.mu.Lock()
		t.eof = true
		t.mu.Unlock()
		return 0, io.EOF
	}
	n, err := t.rc.Read(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if n > 0 {
		if t.h != nil {
			t.h.Write(p[:n])
		}
		t.n += int64(n)
		if room := t.limit - len(t.buf); room > 0 {
			t.buf = append(t.buf, p[:min(n, room)]...)
		}
	}
	if err == io.EOF {
		t.eof = true
	} else if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// Close implements io.Closer.
func (t *Tee) Close() error {
	if t.rc == nil {
		return nil
	}
	return t.rc.Close()
}

// Summary describes what passed through a Tee.
type Summary struct {
	Bytes     int64
	Complete  bool   // read to EOF
	Digest    string // hex HMAC-SHA-256 of every byte (keyed Tees only); empty when not read to EOF
	Captured  []byte // the first Limit bytes
	Truncated bool   // more bytes passed than were captured
	Err       error  // the first read error other than EOF
}

// Summary reports what passed through so far.
func (t *Tee) Summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Bytes: t.n, Complete: t.eof, Captured: t.buf[:len(t.buf):len(t.buf)], Truncated: t.n > int64(len(t.buf)), Err: t.err}
	if t.eof && t.h != nil {
		if t.sum == "" {
			t.sum = hex.EncodeToString(t.h.Sum(nil))
		}
		s.Digest = t.sum
	}
	return s
}
