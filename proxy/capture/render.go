package capture

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Render re-encodes the JSON in body with secrets redacted, emitting at most budget bytes
// (closing open containers, so the result is always valid JSON). complete says whether body is
// the whole input or only a captured prefix.
//
// It is a single pass over the bytes with no intermediate values: strings and numbers that need
// no change are copied verbatim (their escapes included), keys are decoded only when they contain
// escapes, and only strings holding U+0000 or invalid UTF-8 are re-encoded (sanitised).
func (r *Redactor) Render(body []byte, complete bool, budget int) (Rendering, error) {
	s := &scanner{in: body, complete: complete}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return Rendering{}, ErrNotJSON
	}
	if c := s.in[s.pos]; c != '{' && c != '[' && c != '"' && c != '-' && c != 't' && c != 'f' && c != 'n' && (c < '0' || c > '9') {
		return Rendering{}, ErrNotJSON
	}
	w := &writer{budget: budget, out: make([]byte, 0, min(budget, len(body)+16))}
	err := w.value(r, s, 0)
	var out Rendering
	switch {
	case errors.Is(err, errBudget):
		out.Truncated = true
	case errors.Is(err, errEOF):
		if complete {
			out.Invalid = true
		} else {
			out.Truncated = true
		}
	case err != nil:
		out.Invalid = true
	default:
		s.skipSpace()
		if s.pos < len(s.in) {
			out.Invalid = true // trailing data after the value
		}
		if !complete {
			out.Truncated = true
		}
	}
	if len(w.out) == 0 {
		if err != nil && !errors.Is(err, errBudget) {
			return Rendering{}, ErrNotJSON
		}
	}
	out.Redacted = w.redacted
	out.JSON = w.close()
	return out, nil
}

var (
	errEOF    = errors.New("unexpected end of input")
	errSyntax = errors.New("invalid JSON")
	errBudget = errors.New("output budget exhausted")
)

// maxRenderDepth bounds nesting (deeper input is treated as invalid).
const maxRenderDepth = 512

type scanner struct {
	in       []byte
	pos      int
	complete bool // in is the whole input (a number may end it)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// str scans a string starting at the opening quote. It returns the raw bytes including quotes,
// whether it contains escapes, and whether it must be re-encoded (U+0000 or invalid UTF-8).
func (s *scanner) str() (raw []byte, escaped, dirty bool, err error) {
	start := s.pos
	s.pos++ // opening quote
	for s.pos < len(s.in) {
		c := s.in[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.in[start:s.pos], escaped, dirty, nil
		case c == '\\':
			escaped = true
			if s.pos+1 >= len(s.in) {
				return nil, false, false, errEOF
			}
			switch s.in[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.in) {
					return nil, false, false, errEOF
				}
				v, err := strconv.ParseUint(string(s.in[s.pos+2:s.pos+6]), 16, 16)
				if err != nil {
					return nil, false, false, errSyntax
				}
				if v == 0 || (v >= 0xD800 && v <= 0xDFFF) {
					dirty = true // NUL, or a surrogate (maybe lone): let the decoder sanitise it
				}
				s.pos += 6
			default:
				return nil, false, false, errSyntax
			}
		case c < 0x20:
			return nil, false, false, errSyntax
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.in[s.pos:])
			if r == utf8.RuneError && size == 1 {
				if !utf8.FullRune(s.in[s.pos:]) {
					return nil, false, false, errEOF
				}
				dirty = true
			}
			s.pos += size
		}
	}
	return nil, false, false, errEOF
}

// number scans a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	digits := func() int {
		n := 0
		for s.pos < len(s.in) && s.in[s.pos] >= '0' && s.in[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.in[s.pos] == '-' {
		s.pos++
	}
	if s.pos >= len(s.in) {
		return nil, errEOF
	}
	if s.in[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return nil, errSyntax
	}
	if s.pos < len(s.in) && s.in[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			if s.pos >= len(s.in) {
				return nil, errEOF
			}
			return nil, errSyntax
		}
	}
	if s.pos < len(s.in) && (s.in[s.pos] == 'e' || s.in[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.in) && (s.in[s.pos] == '+' || s.in[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			if s.pos >= len(s.in) {
				return nil, errEOF
			}
			return nil, errSyntax
		}
	}
	if s.pos >= len(s.in) && !s.complete {
		return nil, errEOF // a number at the very end of a prefix may have been cut
	}
	return s.in[start:s.pos], nil
}

func (s *scanner) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if s.pos+i >= len(s.in) {
			return errEOF
		}
		if s.in[s.pos+i] != word[i] {
			return errSyntax
		}
	}
	s.pos += len(word)
	return nil
}

// errEnd is returned by next when the container closes.
var errEnd = errors.New("end of container")

// next moves to the n-th entry of an open container (after its separator, if any): it returns
// errEnd when the closer comes instead (consuming it), errEOF or errSyntax on bad input.
func (s *scanner) next(n int, closer byte) error {
	s.skipSpace()
	if s.pos >= len(s.in) {
		return errEOF
	}
	if s.in[s.pos] == closer {
		s.pos++
		return errEnd
	}
	if n > 0 {
		if s.in[s.pos] != ',' {
			return errSyntax
		}
		s.pos++
		s.skipSpace()
		if s.pos >= len(s.in) {
			return errEOF
		}
	}
	return nil
}

// key scans an object member's key and its colon.
func (s *scanner) key() (raw []byte, escaped, dirty bool, err error) {
	if s.in[s.pos] != '"' {
		return nil, false, false, errSyntax
	}
	if raw, escaped, dirty, err = s.str(); err != nil {
		return nil, false, false, err
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return nil, false, false, errEOF
	}
	if s.in[s.pos] != ':' {
		return nil, false, false, errSyntax
	}
	s.pos++
	return raw, escaped, dirty, nil
}

// skip consumes one value without emitting it (a redacted value).
func (s *scanner) skip(depth int) error {
	if depth > maxRenderDepth {
		return errSyntax
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return errEOF
	}
	switch c := s.in[s.pos]; {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.pos++
		for n := 0; ; n++ {
			switch err := s.next(n, closer); err {
			case nil:
			case errEnd:
				return nil
			default:
				return err
			}
			if c == '{' {
				if _, _, _, err := s.key(); err != nil {
					return err
				}
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := s.number()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errSyntax
}

// writer builds the output within a byte budget, remembering how to close what is open.
type writer struct {
	out    []byte
	budget int
	closer []byte // closing brackets of open containers, innermost last
	path   []string
	// redacted: some value was hidden (by name, path or shape).
	redacted bool
}

const redactedJSON = `"` + Redacted + `"`

// room reports whether n more bytes fit while keeping space to close every open container.
func (w *writer) room(n int) bool { return len(w.out)+n+len(w.closer) <= w.budget }

func (w *writer) emitRedacted() error {
	w.redacted = true
	return w.emit([]byte(redactedJSON))
}

func (w *writer) emit(b []byte) error {
	if !w.room(len(b)) {
		return errBudget
	}
	w.out = append(w.out, b...)
	return nil
}

func (w *writer) close() json.RawMessage {
	if len(w.out) == 0 {
		return nil
	}
	for i := len(w.closer) - 1; i >= 0; i-- {
		w.out = append(w.out, w.closer[i])
	}
	w.closer = w.closer[:0]
	return json.RawMessage(w.out)
}

// stringOut returns the bytes to emit for a scanned string: raw when clean, else re-encoded.
func stringOut(raw []byte, dirty bool) []byte {
	if !dirty {
		return raw
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return []byte(`"\uFFFD"`)
	}
	return encodeString(sanitize(v))
}

// keyView is keyText without a copy for a key without escapes: the string shares the scanned
// input's bytes, so it must not outlive the scan (render paths and lookups only compare it).
func keyView(raw []byte, escaped bool) string {
	if !escaped && len(raw) > 2 {
		return unsafe.String(&raw[1], len(raw)-2)
	}
	return keyText(raw, escaped)
}

// keyText returns the decoded text of a scanned key.
func keyText(raw []byte, escaped bool) string {
	if !escaped {
		return string(raw[1 : len(raw)-1])
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return ""
	}
	return v
}

// value renders one value. On error the output holds everything complete before it (a member
// whose value did not fit or did not parse is removed).
func (w *writer) value(r *Redactor, s *scanner, depth int) error {
	if depth > maxRenderDepth {
		return errSyntax
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return errEOF
	}
	switch c := s.in[s.pos]; {
	case c == '"':
		raw, escaped, dirty, err := s.str()
		if err != nil {
			return err
		}
		if escaped && SecretValue(keyText(raw, escaped)) || !escaped && secretBytes(raw[1:len(raw)-1]) {
			return w.emitRedacted() // the shape of a secret, whatever its key
		}
		return w.emit(stringOut(raw, dirty))
	case c == '-' || (c >= '0' && c <= '9'):
		num, err := s.number()
		if err != nil {
			return err
		}
		return w.emit(num)
	case c == 't' || c == 'f' || c == 'n':
		word := "null"
		switch c {
		case 't':
			word = "true"
		case 'f':
			word = "false"
		}
		if err := s.literal(word); err != nil {
			return err
		}
		return w.emit([]byte(word))
	case c == '{':
		return w.object(r, s, depth)
	case c == '[':
		return w.array(r, s, depth)
	}
	return errSyntax
}

func (w *writer) object(r *Redactor, s *scanner, depth int) error {
	if !w.room(2) { // the bracket and, later, its closer
		return errBudget
	}
	w.out = append(w.out, '{')
	s.pos++
	w.closer = append(w.closer, '}')
	defer func() { w.closer = w.closer[:len(w.closer)-1]; w.out = append(w.out, '}') }()
	for n := 0; ; n++ {
		switch err := s.next(n, '}'); err {
		case nil:
		case errEnd:
			return nil
		default:
			return err
		}
		raw, escaped, dirty, err := s.key()
		if err != nil {
			return err
		}
		mark := len(w.out)
		if n > 0 {
			if err := w.emit([]byte{','}); err != nil {
				return err
			}
		}
		if err := w.emit(stringOut(raw, dirty)); err != nil {
			w.out = w.out[:mark]
			return err
		}
		if err := w.emit([]byte{':'}); err != nil {
			w.out = w.out[:mark]
			return err
		}
		afterKey := len(w.out)
		key := keyView(raw, escaped) // w.path lives only while this value renders
		w.path = append(w.path, key)
		if r.SecretKey(key) || r.pathRedacted(w.path) {
			w.path = w.path[:len(w.path)-1]
			if err := w.emitRedacted(); err != nil {
				w.out = w.out[:mark]
				return err
			}
			// The member is complete (its value is hidden either way), even if skipping fails.
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			continue
		}
		err = w.value(r, s, depth+1)
		w.path = w.path[:len(w.path)-1]
		if err != nil {
			if len(w.out) == afterKey {
				w.out = w.out[:mark] // nothing of the value was written: drop the member
			}
			return err
		}
	}
}

func (w *writer) array(r *Redactor, s *scanner, depth int) error {
	if !w.room(2) {
		return errBudget
	}
	w.out = append(w.out, '[')
	s.pos++
	w.closer = append(w.closer, ']')
	defer func() { w.closer = w.closer[:len(w.closer)-1]; w.out = append(w.out, ']') }()
	for n := 0; ; n++ {
		switch err := s.next(n, ']'); err {
		case nil:
		case errEnd:
			return nil
		default:
			return err
		}
		mark := len(w.out)
		if n > 0 {
			if err := w.emit([]byte{','}); err != nil {
				return err
			}
		}
		afterSep := len(w.out)
		w.path = append(w.path, "*")
		redacted := r.pathRedacted(w.path)
		var err error
		if redacted {
			if err = w.emitRedacted(); err == nil {
				err = s.skip(depth + 1)
			}
		} else {
			err = w.value(r, s, depth+1)
		}
		w.path = w.path[:len(w.path)-1]
		if err != nil {
			if len(w.out) == afterSep {
				w.out = w.out[:mark] // nothing of the element was written: drop it
			}
			return err
		}
	}
}
