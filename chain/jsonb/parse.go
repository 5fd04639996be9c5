package jsonb

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/internal/jsonscan"
)

// The intermediate form is a flat slice of nodes in document order. An object's members
// appear as key node, then the value's subtree; an array's elements as consecutive subtrees.
// Every node knows the index just past its subtree (next), so subtrees can be skipped.
const (
	kindNull uint8 = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindArray
	kindObject
)

// node flags
const (
	// flagEscaped marks a string whose decoded bytes live in the arena (the source text had
	// escapes); rendering must escape them. Strings without it are copied from the source
	// verbatim, because a string without escapes needs none in the output either.
	flagEscaped uint8 = 1 << iota
	// flagNormalize marks a number whose source token has an exponent and must be rewritten
	// in plain decimal. Numbers without it are copied from the source verbatim.
	flagNormalize
)

type node struct {
	// string: offset of its bytes in src or (flagEscaped) arena; number: offset of its token
	// in src; object: offset of its kept keys in perm.
	off uint32
	// string/number: length in bytes; array: element count; object: kept member count.
	n    uint32
	next uint32 // index of the first node after this subtree
	kind uint8
	flag uint8
}

// member is an object member seen while parsing: its key node and the output size of
// `"key": value`.
type member struct {
	key  uint32
	size int64
}

// frame is an open container while parsing (and, reused, while rendering).
type frame struct {
	node    uint32 // container node
	count   uint32 // elements or members so far
	mstart  uint32 // objects: start of this object's members in Canonicalizer.members
	key     uint32 // objects: key node of the member being parsed
	keySize int64  // objects: output size of that key
	size    int64  // arrays: sum of the elements' output sizes
}

// parse parses c.src into c.nodes and returns the exact length of its rendering.
func (c *Canonicalizer) parse() (int64, error) {
	src := c.src
	pos := jsonscan.SkipSpace(src, 0)
	for {
		// A value starts at pos.
		var (
			size   int64
			opened bool
			err    error
		)
		pos, size, opened, err = c.value(pos)
		if err != nil {
			return 0, err
		}
		if opened {
			continue // a non-empty container was opened; its first value starts at pos
		}
		// A value of output size `size` ended just before pos: attach it to its container,
		// closing containers as long as they end.
		for {
			if len(c.stack) == 0 {
				pos = jsonscan.SkipSpace(src, pos)
				if pos < len(src) {
					return 0, c.afterNextToken(pos, newError(ErrSyntax, pos, "unexpected %s after the top-level value", describe(src, pos)))
				}
				return size, nil
			}
			f := &c.stack[len(c.stack)-1]
			pos = jsonscan.SkipSpace(src, pos)
			if c.nodes[f.node].kind == kindArray {
				f.count++
				f.size += size
				if pos < len(src) && src[pos] == ',' {
					pos = jsonscan.SkipSpace(src, pos+1)
					break
				}
				if pos < len(src) && src[pos] == ']' {
					pos++
					nd := &c.nodes[f.node]
					nd.n = f.count
					nd.next = uint32(len(c.nodes))
					size = 2 + f.size + 2*int64(f.count-1)
					c.stack = c.stack[:len(c.stack)-1]
					continue
				}
				return 0, c.afterNextToken(pos, newError(ErrSyntax, pos, "expected ',' or ']' after array element, found %s", describe(src, pos)))
			}
			c.members = append(c.members, member{key: f.key, size: f.keySize + 2 + size})
			f.count++
			if pos < len(src) && src[pos] == ',' {
				if pos, err = c.key(jsonscan.SkipSpace(src, pos+1), f); err != nil {
					return 0, err
				}
				break
			}
			if pos < len(src) && src[pos] == '}' {
				pos++
				size = c.closeObject(f)
				c.stack = c.stack[:len(c.stack)-1]
				continue
			}
			return 0, c.afterNextToken(pos, newError(ErrSyntax, pos, "expected ',' or '}' after object member, found %s", describe(src, pos)))
		}
	}
}

// value parses the value at pos. For a scalar or an empty container it returns the position
// after it and its output size; for a non-empty container it pushes a frame, positions after
// the opening bracket (and, for an object, after the first key and its colon) and reports
// opened.
func (c *Canonicalizer) value(pos int) (int, int64, bool, error) {
	src := c.src
	if pos >= len(src) {
		return 0, 0, false, newError(ErrSyntax, pos, "unexpected end of input, expected a value")
	}
	switch b := src[pos]; b {
	case '"':
		pos, size, err := c.str(pos)
		return pos, size, false, err
	case '{', '[':
		if len(c.stack) >= MaxDepth {
			return 0, 0, false, newError(ErrTooDeep, pos, "more than %d nested arrays and objects", MaxDepth)
		}
		idx := uint32(len(c.nodes))
		kind := kindArray
		end := byte(']')
		if b == '{' {
			kind, end = kindObject, '}'
		}
		c.nodes = append(c.nodes, node{kind: kind, next: idx + 1})
		pos = jsonscan.SkipSpace(src, pos+1)
		if pos < len(src) && src[pos] == end {
			return pos + 1, 2, false, nil
		}
		c.stack = append(c.stack, frame{node: idx, mstart: uint32(len(c.members))})
		if kind == kindObject {
			var err error
			if pos, err = c.key(pos, &c.stack[len(c.stack)-1]); err != nil {
				return 0, 0, false, err
			}
		}
		return pos, 0, true, nil
	case 't':
		return c.literal(pos, "true", kindTrue)
	case 'f':
		return c.literal(pos, "false", kindFalse)
	case 'n':
		return c.literal(pos, "null", kindNull)
	default:
		if b == '-' || (b >= '0' && b <= '9') {
			pos, size, err := c.number(pos)
			return pos, size, false, err
		}
		return 0, 0, false, newError(ErrSyntax, pos, "unexpected %s, expected a value", describe(src, pos))
	}
}

func (c *Canonicalizer) literal(pos int, lit string, kind uint8) (int, int64, bool, error) {
	src := c.src
	end, ok, _ := jsonscan.Literal(src, pos, lit)
	if !ok || (end < len(src) && isTokenChar(src[end])) {
		e := pos
		for e < len(src) && isTokenChar(src[e]) {
			e++
		}
		return 0, 0, false, newError(ErrSyntax, pos, "invalid token %q", truncate(src[pos:e]))
	}
	c.nodes = append(c.nodes, node{kind: kind, next: uint32(len(c.nodes) + 1)})
	return end, int64(len(lit)), false, nil
}

// isTokenChar reports the bytes that PostgreSQL's JSON lexer treats as part of a number or
// literal token (JSON_ALPHANUMERIC_CHAR).
func isTokenChar(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' || b >= 0x80
}

// key parses an object key and the colon after it, records the key in f and returns the
// position of the member's value.
func (c *Canonicalizer) key(pos int, f *frame) (int, error) {
	src := c.src
	if pos >= len(src) || src[pos] != '"' {
		return 0, c.afterNextToken(pos, newError(ErrSyntax, pos, "expected a string object key, found %s", describe(src, pos)))
	}
	k := uint32(len(c.nodes))
	pos, size, err := c.str(pos)
	if err != nil {
		return 0, err
	}
	f.key, f.keySize = k, size
	pos = jsonscan.SkipSpace(src, pos)
	if pos >= len(src) || src[pos] != ':' {
		return 0, c.afterNextToken(pos, newError(ErrSyntax, pos, "expected ':' after object key, found %s", describe(src, pos)))
	}
	return jsonscan.SkipSpace(src, pos+1), nil
}

// str parses the string literal at pos (a '"') into a node and returns the position after it
// and its output size.
func (c *Canonicalizer) str(pos int) (int, int64, error) {
	start := pos + 1
	if i, _ := jsonscan.SkipOrdinary(c.src, start, 0); i < len(c.src) && c.src[i] == '"' {
		// A plain string, the common case (ScanString would say the same, less cheaply).
		c.nodes = append(c.nodes, node{off: uint32(start), n: uint32(i - start), next: uint32(len(c.nodes) + 1), kind: kindString})
		return i + 1, int64(i - pos + 1), nil
	}
	var st jsonscan.String
	jsonscan.ScanString(c.src, pos, &st)
	if st.Hard != jsonscan.OK || st.Soft != jsonscan.OK {
		return 0, 0, c.stringError(pos, &st)
	}
	if st.Escaped {
		return c.strEscaped(pos, st.End)
	}
	c.nodes = append(c.nodes, node{off: uint32(start), n: uint32(st.End - 1 - start), next: uint32(len(c.nodes) + 1), kind: kindString})
	return st.End, int64(st.End - pos), nil
}

// stringError returns PostgreSQL's error for what the scan of the string at pos found: its
// first soft problem (a lone surrogate or \u0000, which PostgreSQL refuses), else its hard one.
func (c *Canonicalizer) stringError(pos int, st *jsonscan.String) error {
	src := c.src
	switch st.Soft {
	case jsonscan.HighAfterHigh:
		return newError(ErrLoneSurrogate, st.SoftPos, "Unicode high surrogate must not follow a high surrogate")
	case jsonscan.LowWithoutHigh:
		return newError(ErrLoneSurrogate, st.SoftPos, "Unicode low surrogate must follow a high surrogate")
	case jsonscan.LoneHigh:
		return newError(ErrLoneSurrogate, st.SoftPos, "Unicode high surrogate must be followed by a low surrogate")
	case jsonscan.NULEscape:
		return newError(ErrUnsupportedEscape, st.SoftPos, `\u0000 cannot be converted to text`)
	}
	switch i := st.HardPos; st.Hard {
	case jsonscan.OK:
		return nil
	case jsonscan.ControlChar:
		return newError(ErrSyntax, i, "character with value 0x%02x must be escaped", src[i])
	case jsonscan.BadEscape:
		return newError(ErrSyntax, i, "invalid escape sequence %q", truncate(src[i:i+1+utf8RuneLenAt(src, i+1)]))
	case jsonscan.BadUnicode:
		return newError(ErrSyntax, i, `"\u" must be followed by four hexadecimal digits`)
	}
	return newError(ErrSyntax, pos, "unterminated string")
}

// strEscaped decodes the string at pos, which ends at end and has escapes (all valid: str
// checked them), into the arena.
func (c *Canonicalizer) strEscaped(pos, end int) (int, int64, error) {
	src := c.src
	if cap(c.arena) == 0 {
		c.arena = make([]byte, 0, max(256, len(src)/8))
	}
	aStart := len(c.arena)
	var out int64 // output size of the decoded bytes
	i, last := pos+1, end-1
	for i < last {
		if src[i] != '\\' {
			j := i + 1
			for j < last && src[j] != '\\' {
				j++
			}
			c.arena = append(c.arena, src[i:j]...)
			out += int64(j - i)
			i = j
			continue
		}
		e := src[i+1]
		if e == 'u' {
			r, _ := jsonscan.Hex4(src, i+2)
			i += 6
			if r >= 0xD800 && r <= 0xDBFF { // a low surrogate follows (checked)
				lo, _ := jsonscan.Hex4(src, i+2)
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
			c.arena = utf8.AppendRune(c.arena, r)
			out += int64(escapedLen(r))
			continue
		}
		d := e // '"', '\\', '/'
		switch e {
		case 'b':
			d = '\b'
		case 'f':
			d = '\f'
		case 'n':
			d = '\n'
		case 'r':
			d = '\r'
		case 't':
			d = '\t'
		}
		c.arena = append(c.arena, d)
		out += int64(escapedLen(rune(d)))
		i += 2
	}
	c.nodes = append(c.nodes, node{off: uint32(aStart), n: uint32(len(c.arena) - aStart), next: uint32(len(c.nodes) + 1), kind: kindString, flag: flagEscaped})
	return end, out + 2, nil
}

func utf8RuneLenAt(src []byte, i int) int {
	if i >= len(src) {
		return 0
	}
	_, n := utf8.DecodeRune(src[i:])
	return n
}

// escapedLen is the output size of the decoded character r.
func escapedLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20:
		return 6
	default:
		return utf8.RuneLen(r)
	}
}

// keyBytes returns the decoded bytes of the string node k.
func (c *Canonicalizer) keyBytes(k uint32) []byte {
	nd := &c.nodes[k]
	if nd.flag&flagEscaped != 0 {
		return c.arena[nd.off : nd.off+nd.n]
	}
	return c.src[nd.off : nd.off+nd.n]
}

// compareMembers orders members as jsonb orders object keys: by key length in bytes, then
// bytewise; equal keys by position, so that the last of a run of duplicates is the one kept.
func (c *Canonicalizer) compareMembers(a, b member) int {
	na, nb := c.nodes[a.key].n, c.nodes[b.key].n
	if na != nb {
		if na < nb {
			return -1
		}
		return 1
	}
	if r := bytes.Compare(c.keyBytes(a.key), c.keyBytes(b.key)); r != 0 {
		return r
	}
	switch {
	case a.key < b.key:
		return -1
	case a.key > b.key:
		return 1
	}
	return 0
}

func (c *Canonicalizer) sameKey(a, b uint32) bool {
	return c.nodes[a].n == c.nodes[b].n && bytes.Equal(c.keyBytes(a), c.keyBytes(b))
}

// closeObject sorts and de-duplicates the members of the object f and returns its output size.
func (c *Canonicalizer) closeObject(f *frame) int64 {
	ms := c.members[f.mstart:]
	if len(ms) <= 12 {
		for i := 1; i < len(ms); i++ {
			for j := i; j > 0 && c.compareMembers(ms[j-1], ms[j]) > 0; j-- {
				ms[j-1], ms[j] = ms[j], ms[j-1]
			}
		}
	} else {
		slices.SortFunc(ms, c.compareMembers)
	}
	pstart := len(c.perm)
	size := int64(2)
	for i := range ms {
		if i+1 < len(ms) && c.sameKey(ms[i].key, ms[i+1].key) {
			continue // a later duplicate wins
		}
		c.perm = append(c.perm, ms[i].key)
		size += ms[i].size
	}
	kept := len(c.perm) - pstart
	size += 2 * int64(kept-1)
	nd := &c.nodes[f.node]
	nd.off, nd.n, nd.next = uint32(pstart), uint32(kept), uint32(len(c.nodes))
	c.members = c.members[:f.mstart]
	return size
}

// describe names the byte at pos for an error message.
func describe(src []byte, pos int) string {
	if pos >= len(src) {
		return "end of input"
	}
	r, _ := utf8.DecodeRune(src[pos:])
	if r < 0x20 || r == 0x7f {
		return "character 0x" + string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15])
	}
	return "character " + strconv.QuoteRune(r)
}

// truncate shortens a token quoted in an error message.
func truncate(b []byte) string {
	const max = 40
	if len(b) <= max {
		return string(b)
	}
	i := max
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return string(b[:i]) + "..."
}
