package capture

import (
	"encoding/json"
	"errors"
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

// open writes the opening bracket of a container when it fits with its closer, and remembers
// the closer.
func (w *writer) open(bracket, closer byte) bool {
	if !w.room(2) {
		return false
	}
	w.out = append(w.out, bracket)
	w.closer = append(w.closer, closer)
	return true
}

// shut writes the closer of the innermost open container.
func (w *writer) shut() {
	c := w.closer[len(w.closer)-1]
	w.closer = w.closer[:len(w.closer)-1]
	w.out = append(w.out, c)
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
	c, err := s.begin(depth)
	if err != nil {
		return err
	}
	switch {
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
		word, err := s.word()
		if err != nil {
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
	if !w.open('{', '}') {
		return errBudget
	}
	defer w.shut()
	closer := s.open()
	for n := 0; ; n++ {
		k, more, err := s.entry(n, closer)
		if !more {
			return err
		}
		mark := len(w.out)
		if n > 0 {
			if err := w.emit([]byte{','}); err != nil {
				return err
			}
		}
		if err := w.emit(stringOut(k.raw, k.dirty)); err != nil {
			w.out = w.out[:mark]
			return err
		}
		if err := w.emit([]byte{':'}); err != nil {
			w.out = w.out[:mark]
			return err
		}
		afterKey := len(w.out)
		key := k.view() // w.path lives only while this value renders
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
	if !w.open('[', ']') {
		return errBudget
	}
	defer w.shut()
	closer := s.open()
	for n := 0; ; n++ {
		if _, more, err := s.entry(n, closer); !more {
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
		var err error
		if r.pathRedacted(w.path) {
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
