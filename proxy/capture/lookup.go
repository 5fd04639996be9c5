package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Seg is one step of a value path, read the way Go's encoding/json fills Flowker's input
// structs: a struct field matches every key equal to its name under Unicode case folding
// (bytes.EqualFold), a map key (Exact) only its own spelling. Either way, the last matching
// member of an object wins.
type Seg struct {
	Name  string
	Exact bool
}

// Segs turns plain names into struct-field segments.
func Segs(names ...string) []Seg {
	out := make([]Seg, len(names))
	for i, n := range names {
		out[i] = Seg{Name: n}
	}
	return out
}

// Value is what Flowker's decoder would have stored at a path.
type Value struct {
	Text     string // decoded text (strings: escapes decoded, invalid UTF-8 as U+FFFD, nothing trimmed)
	Found    bool
	IsString bool // the JSON value was a string (numbers and booleans are kept as written)
	// Mismatch: a member at the path holds a value Go cannot store there (an object or array
	// where a scalar belongs, a scalar where an object belongs): encoding/json then fails and
	// Flowker rejects the request (400).
	Mismatch bool
}

// errMismatch marks a JSON type that does not fit the path.
var errMismatch = errors.New("type mismatch")

// Decode returns the value at path in body as encoding/json would decode it into Flowker's
// structs: every member matching a segment is applied in order (so the last one wins; a JSON null
// leaves a struct field as it was and deletes a map entry), and objects met twice on the way are
// merged, as json.Unmarshal merges into an existing struct or map. body must be valid JSON
// (encoding/json decodes nothing from anything else); the zero Value is returned when it is not.
func Decode(body []byte, path []Seg) Value {
	var v Value
	if len(path) == 0 {
		return v
	}
	s := &scanner{in: body, complete: true}
	s.skipSpace()
	if s.pos >= len(s.in) || s.in[s.pos] != '{' {
		if s.pos < len(s.in) && s.in[s.pos] != 'n' {
			v.Mismatch = true // the top-level struct cannot take an array or scalar
		}
		return v
	}
	if err := decodeObject(s, path, &v, 0); err != nil && !errors.Is(err, errMismatch) {
		return Value{}
	}
	return v
}

func decodeObject(s *scanner, path []Seg, v *Value, depth int) error {
	if depth > maxRenderDepth {
		return errSyntax
	}
	s.pos++ // '{'
	seg := path[0]
	for n := 0; ; n++ {
		switch err := s.next(n, '}'); err {
		case nil:
		case errEnd:
			return nil
		default:
			return err
		}
		raw, escaped, _, err := s.key()
		if err != nil {
			return err
		}
		k := keyView(raw, escaped) // compared only
		if seg.Exact && k != seg.Name || !seg.Exact && !strings.EqualFold(k, seg.Name) {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			continue
		}
		s.skipSpace()
		if s.pos >= len(s.in) {
			return errEOF
		}
		c := s.in[s.pos]
		if len(path) == 1 {
			switch {
			case c == '"':
				raw, _, _, err := s.str()
				if err != nil {
					return err
				}
				var t string
				if err := json.Unmarshal(raw, &t); err != nil {
					return errSyntax
				}
				*v = Value{Text: t, Found: true, IsString: true, Mismatch: v.Mismatch}
			case c == 'n':
				if err := s.literal("null"); err != nil {
					return err
				}
				if seg.Exact {
					*v = Value{Mismatch: v.Mismatch} // a map entry set to nil
				}
			case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
				start := s.pos
				if err := s.skip(depth + 1); err != nil {
					return err
				}
				*v = Value{Text: string(s.in[start:s.pos]), Found: true, Mismatch: v.Mismatch || !seg.Exact}
			default: // an object or array where a scalar is read
				if err := s.skip(depth + 1); err != nil {
					return err
				}
				*v = Value{Found: false, Mismatch: true}
			}
			continue
		}
		switch c {
		case '{':
			if err := decodeObject(s, path[1:], v, depth+1); err != nil && !errors.Is(err, errMismatch) {
				return err
			}
		case 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
			if path[1].Exact {
				*v = Value{Mismatch: v.Mismatch} // the map is set to nil: what it held is gone
			}
		default:
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			v.Mismatch = true
		}
	}
}

// foldKey is encoding/json's folded form of a key (equal for keys bytes.EqualFold matches).
func foldKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}

// AmbiguousKeys lists (as dot paths, "*" for array elements, at most limit of them) the object
// members of a JSON body whose key repeats within its object exactly or under case folding:
// the members a reader of the body could take for the value while Flowker's decoder took another
// (the last one). It returns nil for a body without them, or that is not valid JSON.
func AmbiguousKeys(body []byte, limit int) []string {
	a := ambiguities.Get().(*ambiguity)
	*a = ambiguity{s: scanner{in: body, complete: true}, limit: limit, keys: a.keys[:0], path: a.path[:0]}
	_ = a.value(0)
	out := a.out
	clear(a.keys[:cap(a.keys)]) // no view of body stays reachable from the pool
	clear(a.path[:cap(a.path)])
	a.s, a.out = scanner{}, nil
	ambiguities.Put(a)
	return out
}

// ambiguities recycles the walkers' key stacks (they escape: one walk per audited request).
var ambiguities = sync.Pool{New: func() any {
	return &ambiguity{keys: make([][]byte, 0, 32), path: make([][]byte, 0, 32)}
}}

// ambiguity walks a body; keys of the open objects are kept as views of the input (decoded only
// when escaped) on one stack, so a body without repeats costs no allocation per member.
type ambiguity struct {
	s     scanner
	limit int
	out   []string
	keys  [][]byte // keys of the open objects, innermost last
	path  [][]byte // the member path to the current value
}

func (a *ambiguity) value(depth int) error {
	s := &a.s
	if depth > maxRenderDepth {
		return errSyntax
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return errEOF
	}
	switch s.in[s.pos] {
	case '{':
		s.pos++
		base := len(a.keys)
		defer func() { a.keys = a.keys[:base] }()
		for n := 0; ; n++ {
			switch err := s.next(n, '}'); err {
			case nil:
			case errEnd:
				return nil
			default:
				return err
			}
			raw, escaped, _, err := s.key()
			if err != nil {
				return err
			}
			k := raw[1 : len(raw)-1]
			if escaped {
				k = []byte(keyText(raw, escaped))
			}
			for _, prev := range a.keys[base:] {
				if bytes.EqualFold(prev, k) {
					a.report(k)
					break
				}
			}
			a.keys = append(a.keys, k)
			a.path = append(a.path, k)
			err = a.value(depth + 1)
			a.path = a.path[:len(a.path)-1]
			if err != nil {
				return err
			}
		}
	case '[':
		s.pos++
		for n := 0; ; n++ {
			switch err := s.next(n, ']'); err {
			case nil:
			case errEnd:
				return nil
			default:
				return err
			}
			a.path = append(a.path, star)
			err := a.value(depth + 1)
			a.path = a.path[:len(a.path)-1]
			if err != nil {
				return err
			}
		}
	}
	return s.skip(depth)
}

var star = []byte("*")

func (a *ambiguity) report(k []byte) {
	if len(a.out) >= a.limit {
		return
	}
	p := make([]string, 0, len(a.path)+1)
	for _, seg := range a.path {
		p = append(p, string(seg))
	}
	p = append(p, string(k))
	full := strings.Join(p, ".")
	for _, o := range a.out {
		if strings.EqualFold(o, full) {
			return
		}
	}
	a.out = append(a.out, full)
}

// DecodePrefix is Decode for a body cut short (a capture the hold budget or limit stopped):
// members wholly inside the prefix are applied; a value cut by the end is not. Only for bodies
// that cannot repeat a key later (Flowker's responses, written by encoding/json).
func DecodePrefix(body []byte, path []Seg) Value {
	var v Value
	if len(path) == 0 {
		return v
	}
	s := &scanner{in: body}
	s.skipSpace()
	if s.pos >= len(s.in) || s.in[s.pos] != '{' {
		return v
	}
	_ = decodeObject(s, path, &v, 0) // stops at the cut; a number or string cut there is not applied
	return v
}
