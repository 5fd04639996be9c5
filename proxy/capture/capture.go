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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// DefaultSecretKeys are always redacted, wherever they appear (case-insensitive, matched against
// the key with '-' and '_' removed).
var DefaultSecretKeys = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey",
	"authorization", "credential", "cookie", "signature", "sessionid", "clientsecret", "webhooktoken",
	"verifytoken", "bearer", "jwt", "connectionstring", "connstr", "dsn",
}

// DefaultSecretNames are short names redacted only when the whole (normalised) key is one of
// them: as substrings they would hide ordinary fields ("pass" in "bypass", "key" in "keyword").
var DefaultSecretNames = []string{"pass", "pwd", "pw", "key", "auth", "sig", "sign", "otp", "pin", "creds"}

// Redactor decides what to hide. It is immutable and safe for concurrent use.
type Redactor struct {
	keys  [][]byte         // substrings of a normalised key that mark a secret
	names []string         // whole normalised keys that mark a secret
	extra []*regexp.Regexp // configured key patterns
	paths [][]string       // dot paths, lower-cased, "*" = any key or index
}

// NewRedactor builds a redactor from the default secret keys plus configured key patterns
// (case-insensitive regular expressions) and dot paths.
func NewRedactor(keyPatterns, paths []string) (*Redactor, error) {
	r := &Redactor{}
	for _, k := range DefaultSecretKeys {
		r.keys = append(r.keys, []byte(k))
	}
	r.names = DefaultSecretNames
	for _, p := range keyPatterns {
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			return nil, fmt.Errorf("redact key pattern %q: %w", p, err)
		}
		r.extra = append(r.extra, re)
	}
	for _, p := range paths {
		r.paths = append(r.paths, strings.Split(strings.ToLower(p), "."))
	}
	return r, nil
}

// With returns a redactor that also redacts paths (for a rule's own paths).
func (r *Redactor) With(paths []string) *Redactor {
	if len(paths) == 0 {
		return r
	}
	c := *r
	c.paths = append([][]string{}, r.paths...)
	for _, p := range paths {
		c.paths = append(c.paths, strings.Split(strings.ToLower(p), "."))
	}
	return &c
}

// SecretKey reports whether a key or parameter name looks like it holds a secret.
func (r *Redactor) SecretKey(key string) bool {
	var buf [64]byte
	n := normalizeKey(buf[:0], key)
	for _, k := range r.keys {
		if bytes.Contains(n, k) {
			return true
		}
	}
	for _, k := range r.names {
		if string(n) == k {
			return true
		}
	}
	for _, re := range r.extra {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

// normalizeKey appends key lower-cased without '-', '_', '.' and spaces ("X-API-Key" ->
// "xapikey"), the form DefaultSecretKeys are written in.
func normalizeKey(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func (r *Redactor) pathRedacted(path []string) bool {
	for _, p := range r.paths {
		if len(p) != len(path) {
			continue
		}
		ok := true
		for i := range p {
			if p[i] != "*" && p[i] != strings.ToLower(path[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Query returns the query parameters with secret-looking values redacted, or nil when empty.
func (r *Redactor) Query(rawQuery string) map[string][]string {
	if rawQuery == "" {
		return nil
	}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil && len(vals) == 0 {
		return map[string][]string{"_unparsed": {fmt.Sprintf("%d bytes", len(rawQuery))}}
	}
	out := make(map[string][]string, len(vals))
	for k, vs := range vals {
		k = sanitize(k)
		if r.SecretKey(k) {
			out[k] = []string{Redacted}
			continue
		}
		clean := make([]string, len(vs))
		for i, v := range vs {
			clean[i] = sanitize(v)
		}
		out[k] = clean
	}
	return out
}

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
// requests in flight). It never blocks: a holder takes what is left and captures less.
type Budget struct {
	avail atomic.Int64
	total int64
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
		if got == 0 || b.avail.CompareAndSwap(a, a-got) {
			return int(got)
		}
	}
}

// Give returns n bytes.
func (b *Budget) Give(n int) { b.avail.Add(int64(n)) }

// InUse is the number of bytes taken.
func (b *Budget) InUse() int64 { return b.total - b.avail.Load() }

// Tee wraps a body: it passes every byte through, keeps the first Limit bytes, and hashes and
// counts everything.
type Tee struct {
	mu     sync.Mutex // Summary may run while the transport still reads
	rc     io.ReadCloser
	limit  int
	buf    []byte
	h      hash.Hash
	n      int64
	err    error
	eof    bool
	budget *Budget
	taken  int
}

// NewTee wraps rc (which may be nil or http.NoBody).
func NewTee(rc io.ReadCloser, limit int) *Tee {
	return &Tee{rc: rc, limit: limit, h: sha256.New()}
}

// WithBudget makes the captured bytes count against b: once b runs out the Tee stops capturing
// (what it kept stays a prefix). Release gives them back.
func (t *Tee) WithBudget(b *Budget) *Tee {
	t.budget = b
	return t
}

// Release gives the captured bytes back to the budget; the capture must not be used afterwards.
func (t *Tee) Release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.budget != nil && t.taken > 0 {
		t.budget.Give(t.taken)
		t.taken = 0
	}
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
		t.h.Write(p[:n])
		t.n += int64(n)
		if room := t.limit - len(t.buf); room > 0 {
			want := min(n, room)
			if t.budget != nil {
				got := t.budget.Take(want)
				t.taken += got
				if got < want {
					t.limit = len(t.buf) + got // out of budget: keep a prefix, capture no more
				}
				want = got
			}
			t.buf = append(t.buf, p[:want]...)
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
	SHA256    string // of every byte; empty when not read to EOF
	Captured  []byte // the first Limit bytes
	Truncated bool   // more bytes passed than were captured
	Err       error  // the first read error other than EOF
}

// Summary reports what passed through so far.
func (t *Tee) Summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{Bytes: t.n, Complete: t.eof, Captured: t.buf[:len(t.buf):len(t.buf)], Truncated: t.n > int64(len(t.buf)), Err: t.err}
	if t.eof {
		s.SHA256 = hex.EncodeToString(t.h.Sum(nil))
	}
	return s
}
