package jsonb

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Limits enforced by the parser. See the package documentation for how they relate to
// PostgreSQL's own limits.
const (
	// MaxDepth is the deepest nesting of arrays and objects that is accepted. A top-level
	// array or object is depth 1. PostgreSQL 15 with its default max_stack_depth (2MB)
	// was measured to accept 12000 levels of arrays and of objects; encoding/json accepts 10000.
	MaxDepth = 10000

	// MaxLen is the largest input, and the largest rendering, in bytes: 1 GiB - 1, the size
	// limit of a PostgreSQL text value (MaxAllocSize - 1).
	MaxLen = 1<<30 - 1

	// maxIntDigits is the most digits a numeric may have before the decimal point (weight
	// is an int16 counting base-10000 digits: 32768*4).
	maxIntDigits = 131072
	// maxScale is the largest display scale a numeric can store (14 bits).
	maxScale = 16383
	// maxExponent is PostgreSQL 15's bound on a decimal exponent: |exp| >= INT_MAX/2 is
	// rejected by numeric_in with "value overflows numeric format".
	maxExponent = 1<<30 - 1
)

// Sentinel errors. Every error returned by Canonical, AppendCanonical and
// Canonicalizer.AppendCanonical wraps exactly one of them; test with errors.Is. All of them
// except ErrTooLarge come as an *Error that tells where the problem is.
var (
	// ErrSyntax reports input that is not JSON text (PostgreSQL: SQLSTATE 22P02, invalid
	// input syntax for type json).
	ErrSyntax = errors.New("jsonb: invalid JSON syntax")
	// ErrUnsupportedEscape reports the escape \u0000, which PostgreSQL's text type cannot
	// hold (SQLSTATE 22P05, unsupported Unicode escape sequence).
	ErrUnsupportedEscape = errors.New("jsonb: unsupported Unicode escape sequence")
	// ErrLoneSurrogate reports a \uXXXX escape of a UTF-16 surrogate that is not part of a
	// high-low pair (PostgreSQL: SQLSTATE 22P02).
	ErrLoneSurrogate = errors.New("jsonb: lone UTF-16 surrogate in Unicode escape")
	// ErrInvalidUTF8 reports input bytes that are not valid UTF-8 (PostgreSQL: SQLSTATE
	// 22021, invalid byte sequence for encoding "UTF8").
	ErrInvalidUTF8 = errors.New("jsonb: invalid UTF-8")
	// ErrNumberOverflow reports a number that PostgreSQL's numeric type cannot store (SQLSTATE
	// 22003, value overflows numeric format).
	ErrNumberOverflow = errors.New("jsonb: value overflows numeric format")
	// ErrTooDeep reports nesting deeper than MaxDepth.
	ErrTooDeep = errors.New("jsonb: nesting too deep")
	// ErrTooLarge reports an input or a rendering longer than MaxLen bytes.
	ErrTooLarge = errors.New("jsonb: text too large")
)

// Error describes why and where an input was rejected. It wraps one of the sentinel errors.
type Error struct {
	// Offset is the byte offset in the input where the problem was found.
	Offset int
	// Reason says what is wrong, e.g. `invalid escape sequence "\q"`.
	Reason string
	// Err is the sentinel error (ErrSyntax, ErrUnsupportedEscape, ...).
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%v at byte offset %d: %s", e.Err, e.Offset, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

func newError(sentinel error, offset int, format string, args ...any) error {
	return &Error{Offset: offset, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

// Canonical returns the PostgreSQL jsonb::text rendering of the JSON text src.
func Canonical(src []byte) ([]byte, error) {
	return AppendCanonical(nil, src)
}

// AppendCanonical appends the rendering to dst (for callers that reuse buffers). On error it
// returns dst unchanged. The spare capacity of dst must not overlap src.
//
// It allocates scratch space on every call; a Canonicalizer kept by the caller avoids that.
func AppendCanonical(dst, src []byte) ([]byte, error) {
	var c Canonicalizer
	return c.appendCanonical(dst, src)
}

// Canonicalizer renders JSON text like AppendCanonical but keeps its scratch buffers between
// calls, so that a warmed-up Canonicalizer only allocates when dst must grow. The zero value
// is ready to use. A Canonicalizer must not be used by several goroutines at once.
type Canonicalizer struct {
	src     []byte
	nodes   []node   // every value and key, in document order
	arena   []byte   // decoded bytes of strings that contained escapes
	members []member // members of the objects being parsed, innermost last
	perm    []uint32 // per object: its kept key nodes in output order
	stack   []frame  // open containers while parsing; render state while rendering
}

// AppendCanonical appends the PostgreSQL jsonb::text rendering of src to dst. On error it
// returns dst unchanged. The spare capacity of dst must not overlap src.
func (c *Canonicalizer) AppendCanonical(dst, src []byte) ([]byte, error) {
	out, err := c.appendCanonical(dst, src)
	// Do not pin memory from one huge document for the life of the Canonicalizer.
	const retain = 1 << 16
	if cap(c.nodes) > retain {
		c.nodes = nil
	}
	if cap(c.arena) > retain*8 {
		c.arena = nil
	}
	if cap(c.members) > retain || cap(c.perm) > retain || cap(c.stack) > retain {
		c.members, c.perm, c.stack = nil, nil, nil
	}
	return out, err
}

func (c *Canonicalizer) appendCanonical(dst, src []byte) ([]byte, error) {
	if len(src) > MaxLen {
		return dst, fmt.Errorf("%w: input is %d bytes, more than %d", ErrTooLarge, len(src), MaxLen)
	}
	if !utf8.Valid(src) {
		return dst, invalidUTF8(src)
	}
	c.src = src
	c.nodes, c.arena, c.members, c.perm, c.stack = c.nodes[:0], c.arena[:0], c.members[:0], c.perm[:0], c.stack[:0]
	// Size fresh buffers for a typical document (about one node per 10 bytes) so that they
	// rarely grow.
	if cap(c.nodes) == 0 {
		c.nodes = make([]node, 0, len(src)/8+16)
	}
	if cap(c.members) == 0 {
		c.members = make([]member, 0, 32)
	}
	if cap(c.perm) == 0 {
		c.perm = make([]uint32, 0, len(src)/16+16)
	}
	if cap(c.stack) == 0 {
		c.stack = make([]frame, 0, 16)
	}
	size, err := c.parse()
	c.src = nil
	if err != nil {
		return dst, err
	}
	if size > MaxLen {
		return dst, fmt.Errorf("%w: rendering would be %d bytes, more than %d", ErrTooLarge, size, MaxLen)
	}
	n := len(dst)
	dst = slices.Grow(dst, int(size))
	dst = c.render(dst, src)
	if int64(len(dst)-n) != size {
		// The size computed while parsing and the bytes rendered must agree; a mismatch is
		// a bug in this package, never a property of the input.
		return dst[:n], fmt.Errorf("jsonb: internal error: rendered %d bytes, computed %d", len(dst)-n, size)
	}
	return dst, nil
}

func invalidUTF8(src []byte) error {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			return newError(ErrInvalidUTF8, i, "invalid byte 0x%02x", src[i])
		}
		i += n
	}
	return newError(ErrInvalidUTF8, 0, "invalid byte sequence")
}

// AppendString appends s to dst as a jsonb string literal: in double quotes, with `"`, `\`
// and U+0000-U+001F escaped exactly as PostgreSQL's jsonb output does (`\"`, `\\`, `\b`, `\f`,
// `\n`, `\r`, `\t`, otherwise `\u00xx` in lower-case hex) and every other character copied
// as is.
//
// s must be valid UTF-8 without U+0000. AppendString does not check this: invalid bytes are
// copied unchanged and U+0000 is written as `\u0000`, so that Canonical rejects the result
// (with ErrInvalidUTF8 or ErrUnsupportedEscape) exactly as PostgreSQL would reject it.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}
