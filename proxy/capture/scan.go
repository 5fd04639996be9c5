package capture

import (
	"errors"
	"unicode/utf8"
	"unsafe"

	"github.com/flowker-audit/flowker-audit/internal/jsonscan"
)

// maxRenderDepth bounds nesting (deeper input is treated as invalid).
const maxRenderDepth = 512

// scanner walks JSON input with the shared tokenizer (internal/jsonscan), telling a body cut
// short (errEOF: more input could have made it valid) from an invalid one (errSyntax).
type scanner struct {
	in       []byte
	pos      int
	complete bool // in is the whole input (a number may end it)
}

func (s *scanner) skipSpace() { s.pos = jsonscan.SkipSpace(s.in, s.pos) }

// str scans a string starting at the opening quote. It returns the raw bytes including quotes,
// whether it contains escapes, and whether it must be re-encoded (U+0000, a surrogate escape, or
// invalid UTF-8).
func (s *scanner) str() (raw []byte, escaped, dirty bool, err error) {
	var st jsonscan.String
	jsonscan.ScanString(s.in, s.pos, &st)
	switch st.Hard {
	case jsonscan.OK:
	case jsonscan.Unterminated:
		return nil, false, false, errEOF
	case jsonscan.BadUnicode:
		if st.Cut {
			return nil, false, false, errEOF
		}
		return nil, false, false, errSyntax
	default:
		return nil, false, false, errSyntax
	}
	raw = s.in[s.pos:st.End]
	s.pos = st.End
	dirty = st.NUL || st.Surrogate || st.NonASCII && !utf8.Valid(raw[1:len(raw)-1])
	return raw, st.Escaped, dirty, nil
}

// number scans a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	var n jsonscan.Number
	jsonscan.ScanNumber(s.in, s.pos, &n)
	switch n.Problem {
	case jsonscan.OK, jsonscan.LeadingZero: // "01": the number is 0, and what follows is wrong
	default:
		if n.Cut {
			return nil, errEOF
		}
		return nil, errSyntax
	}
	start := s.pos
	s.pos = n.End
	if s.pos >= len(s.in) && !s.complete {
		return nil, errEOF // a number at the very end of a prefix may have been cut
	}
	return s.in[start:s.pos], nil
}

func (s *scanner) literal(word string) error {
	end, ok, cut := jsonscan.Literal(s.in, s.pos, word)
	switch {
	case ok:
		s.pos = end
		return nil
	case cut:
		return errEOF
	}
	return errSyntax
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

// key is an object member's key as scanned: its raw bytes (quotes included), whether it has
// escapes, and whether it must be re-encoded.
type key struct {
	raw            []byte
	escaped, dirty bool
}

// text returns the key's decoded text.
func (k key) text() string { return keyText(k.raw, k.escaped) }

// view is text without a copy for a key without escapes: the string shares the scanned input's
// bytes, so it must not outlive the scan (render paths and lookups only compare it).
func (k key) view() string {
	if !k.escaped && len(k.raw) > 2 {
		return unsafe.String(&k.raw[1], len(k.raw)-2)
	}
	return k.text()
}

// open consumes the opening bracket at s.pos and returns its closer, for entry.
func (s *scanner) open() byte {
	c := s.in[s.pos]
	s.pos++
	if c == '{' {
		return '}'
	}
	return ']'
}

// entry moves to the n-th entry of the container that open opened: past its separator and,
// in an object (closer '}'), past its key and colon, returning the key. more is false when the
// closer came instead (consumed; err is nil) or the input is bad (err says how).
func (s *scanner) entry(n int, closer byte) (k key, more bool, err error) {
	switch err := s.next(n, closer); err {
	case nil:
	case errEnd:
		return key{}, false, nil
	default:
		return key{}, false, err
	}
	if closer == '}' {
		if k.raw, k.escaped, k.dirty, err = s.key(); err != nil {
			return key{}, false, err
		}
	}
	return k, true, nil
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

// begin moves to the value at s.pos (past whitespace) and returns its first byte: errSyntax
// past maxRenderDepth, errEOF at the end of the input.
func (s *scanner) begin(depth int) (byte, error) {
	if depth > maxRenderDepth {
		return 0, errSyntax
	}
	s.skipSpace()
	if s.pos >= len(s.in) {
		return 0, errEOF
	}
	return s.in[s.pos], nil
}

// skip consumes one value without emitting it (a redacted value).
func (s *scanner) skip(depth int) error {
	c, err := s.begin(depth)
	if err != nil {
		return err
	}
	switch {
	case c == '"':
		_, _, _, err := s.str()
		return err
	case c == '{' || c == '[':
		closer := s.open()
		for n := 0; ; n++ {
			if _, more, err := s.entry(n, closer); !more {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := s.number()
		return err
	case c == 't' || c == 'f' || c == 'n':
		_, err := s.word()
		return err
	}
	return errSyntax
}

// word scans the literal (true, false, null) whose first letter is at s.pos.
func (s *scanner) word() (string, error) {
	word := "null"
	switch s.in[s.pos] {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	}
	return word, s.literal(word)
}
