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
	"unicode/utf8"
)

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// DefaultSecretKeys are always redacted, wherever they appear (case-insensitive, matched against
// the key with '-' and '_' removed).
var DefaultSecretKeys = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey",
	"authorization", "credential", "cookie", "signature", "sessionid", "clientsecret", "webhooktoken",
	"verifytoken",
}

// Redactor decides what to hide. It is immutable and safe for concurrent use.
type Redactor struct {
	keys  []string         // substrings of a normalised key that mark a secret
	extra []*regexp.Regexp // configured key patterns
	paths [][]string       // dot paths, lower-cased, "*" = any key or index
}

// NewRedactor builds a redactor from the default secret keys plus configured key patterns
// (case-insensitive regular expressions) and dot paths.
func NewRedactor(keyPatterns, paths []string) (*Redactor, error) {
	r := &Redactor{keys: DefaultSecretKeys}
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
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "", " ", "").Replace(key))
	for _, k := range r.keys {
		if strings.Contains(n, k) {
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

// Render re-encodes the JSON in body with secrets redacted, emitting at most budget bytes
// (closing open containers, so the result is always valid JSON). complete says whether body is
// the whole input or only a captured prefix.
func (r *Redactor) Render(body []byte, complete bool, budget int) (Rendering, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := &writer{budget: budget}
	var out Rendering
	var err error
	for {
		var tok json.Token
		tok, err = dec.Token()
		if err != nil {
			break
		}
		if !w.token(r, dec, tok) {
			out.Truncated = true
			break
		}
		if w.done() {
			break
		}
	}
	switch {
	case w.empty():
		if errors.Is(err, io.EOF) && len(bytes.TrimSpace(body)) == 0 {
			return Rendering{}, ErrNotJSON
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Rendering{}, fmt.Errorf("%w: %v", ErrNotJSON, err)
		}
	case err != nil && !errors.Is(err, io.EOF):
		if !complete && (errors.Is(err, io.ErrUnexpectedEOF) || isEOFSyntax(err)) {
			out.Truncated = true
		} else {
			out.Invalid = true
		}
	case err == nil && w.done() && dec.More():
		// Trailing data after a complete value.
		out.Invalid = true
	}
	if !complete && !w.done() {
		out.Truncated = true
	}
	out.JSON = w.close()
	return out, nil
}

func isEOFSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end")
}

// writer rebuilds JSON from tokens with a byte budget.
type writer struct {
	buf    []byte
	budget int
	stack  []frame
	path   []string
	wrote  bool // a top-level value was completed
	// pendingKey is set between writing a member's key and starting its value; keyStart is
	// where that key began, so an unfinished member can be removed.
	pendingKey bool
	keyStart   int
}

type frame struct {
	object bool
	n      int  // members/elements written
	key    bool // object: the next token is a key
}

func (w *writer) empty() bool { return len(w.buf) == 0 }
func (w *writer) done() bool  { return w.wrote && len(w.stack) == 0 }

// room reports whether n more bytes fit, keeping space to close every open container.
func (w *writer) room(n int) bool {
	return len(w.buf)+n+len(w.stack)+5 <= w.budget
}

// token appends one token; false means the budget is exhausted (or the input ended while a
// redacted value was being skipped).
func (w *writer) token(r *Redactor, dec *json.Decoder, tok json.Token) bool {
	if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
		if len(w.stack) > 0 {
			w.stack = w.stack[:len(w.stack)-1]
		}
		w.buf = append(w.buf, byte(d))
		w.endValue()
		return true
	}
	n := len(w.stack)
	if n > 0 && w.stack[n-1].object && w.stack[n-1].key {
		key, _ := tok.(string)
		enc := encodeString(sanitize(key))
		sep := 0
		if w.stack[n-1].n > 0 {
			sep = 1
		}
		if !w.room(sep + len(enc) + 1 + len(redactedJSON)) {
			return false
		}
		w.keyStart = len(w.buf)
		if sep == 1 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, enc...)
		w.buf = append(w.buf, ':')
		w.stack[n-1].key = false
		w.path = append(w.path, key)
		if r.SecretKey(key) || r.pathRedacted(w.path) {
			w.buf = append(w.buf, redactedJSON...)
			w.endValue()
			return skipValue(dec)
		}
		w.pendingKey = true
		return true
	}
	inArray := n > 0 && !w.stack[n-1].object
	sep := 0
	if inArray {
		if w.stack[n-1].n > 0 {
			sep = 1
		}
		w.path = append(w.path, "*")
		if r.pathRedacted(w.path) {
			if !w.room(sep + len(redactedJSON)) {
				return false
			}
			if sep == 1 {
				w.buf = append(w.buf, ',')
			}
			w.buf = append(w.buf, redactedJSON...)
			w.endValue()
			if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
				return skipRest(dec, 1)
			}
			return true
		}
	}
	var enc []byte
	switch v := tok.(type) {
	case json.Delim:
		enc = []byte{byte(v)}
	case string:
		enc = encodeString(sanitize(v))
	case json.Number:
		enc = []byte(v.String())
	case bool:
		enc = []byte(fmt.Sprint(v))
	case nil:
		enc = []byte("null")
	}
	if !w.room(sep + len(enc)) {
		return false
	}
	if sep == 1 {
		w.buf = append(w.buf, ',')
	}
	w.buf = append(w.buf, enc...)
	w.pendingKey = false
	if d, ok := tok.(json.Delim); ok {
		w.stack = append(w.stack, frame{object: d == '{', key: d == '{'})
		return true
	}
	w.endValue()
	return true
}

const redactedJSON = `"` + Redacted + `"`

// endValue records that a value finished: it counts it in its container and leaves its path
// entry (the member's key or the element's "*").
func (w *writer) endValue() {
	n := len(w.stack)
	if n == 0 {
		w.wrote = true
		return
	}
	top := &w.stack[n-1]
	top.n++
	if top.object {
		top.key = true
	}
	if len(w.path) > 0 {
		w.path = w.path[:len(w.path)-1]
	}
}

// close closes every open container and returns the rendering (nil if nothing was written).
func (w *writer) close() json.RawMessage {
	if len(w.buf) == 0 {
		return nil
	}
	if w.pendingKey {
		// A member's key was written but not its value: drop the member.
		w.buf = w.buf[:w.keyStart]
		w.pendingKey = false
	}
	for i := len(w.stack) - 1; i >= 0; i-- {
		f := w.stack[i]
		if f.object {
			w.buf = append(w.buf, '}')
		} else {
			w.buf = append(w.buf, ']')
		}
	}
	w.stack = nil
	return json.RawMessage(w.buf)
}

// skipValue consumes the next value from dec (scalar or whole container).
func skipValue(dec *json.Decoder) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		return skipRest(dec, 1)
	}
	return true
}

func skipRest(dec *json.Decoder, depth int) bool {
	for depth > 0 {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
	}
	return true
}

// sanitize makes s storable as jsonb text: invalid UTF-8 and U+0000 (which PostgreSQL's jsonb
// rejects) become U+FFFD.
func sanitize(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// Sanitize is the exported form of sanitize for other event fields.
func Sanitize(s string) string { return sanitize(s) }

func encodeString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

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
}

// NewTee wraps rc (which may be nil or http.NoBody).
func NewTee(rc io.ReadCloser, limit int) *Tee {
	return &Tee{rc: rc, limit: limit, h: sha256.New()}
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
