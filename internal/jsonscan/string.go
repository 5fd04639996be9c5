package jsonscan

import (
	"encoding/binary"
	"math/bits"
)

// Problem is what a scanner found wrong with a token.
type Problem uint8

// Problems. A string's hard problems end its scan (the token is not a JSON string); its soft
// problems are valid JSON that PostgreSQL refuses.
const (
	OK Problem = iota

	// Unterminated: the input ended inside the string (position: the opening quote).
	Unterminated
	// ControlChar: an unescaped byte below 0x20 (position: that byte).
	ControlChar
	// BadEscape: a backslash followed by no escape character (position: the backslash).
	BadEscape
	// BadUnicode: "\u" not followed by four hexadecimal digits (position: the backslash);
	// String.Cut says whether the input ended within them.
	BadUnicode

	// HighAfterHigh: a \uD800-\uDBFF escape right after another (position: the second).
	HighAfterHigh
	// LowWithoutHigh: a \uDC00-\uDFFF escape not right after a high one (position: it).
	LowWithoutHigh
	// LoneHigh: a high-surrogate escape not followed by a low one (position: the high one).
	LoneHigh
	// NULEscape: \u0000 (position: it).
	NULEscape

	// NoIntDigit: a number without a digit where its integer part starts (position: the
	// number); Number.Cut says whether the input ended there.
	NoIntDigit
	// LeadingZero: a number whose integer part is 0 followed by a digit (the number ends after
	// the 0, as RFC 8259 reads it; PostgreSQL refuses it).
	LeadingZero
	// NoFracDigit: no digit after the decimal point (Number.Cut: the input ended there).
	NoFracDigit
	// NoExpDigit: no digit in the exponent (Number.Cut: the input ended there).
	NoExpDigit
)

// String is what ScanString found.
type String struct {
	// End is the position after the closing quote (valid when Hard is OK).
	End int
	// Escaped: the string has a backslash escape, so its text differs from its bytes.
	Escaped bool
	// NonASCII: the string has a byte of 0x80 or above (whether it is valid UTF-8 is not
	// checked here).
	NonASCII bool
	// Surrogate: some escape is a UTF-16 surrogate (\uD800-\uDFFF), paired or not.
	Surrogate bool
	// NUL: some escape is \u0000.
	NUL bool
	// Hard is the problem that ended the scan, at HardPos; OK when the string is complete.
	Hard    Problem
	HardPos int
	// Cut: Hard is BadUnicode because the input ended within the four digits.
	Cut bool
	// Soft is the first soft problem, at SoftPos, in the order PostgreSQL's lexer meets them
	// (a lone high surrogate is met at what follows it); OK when there is none. A soft problem
	// before a hard one is met first.
	Soft    Problem
	SoftPos int
}

func (s *String) soft(p Problem, pos int) {
	if s.Soft == OK {
		s.Soft, s.SoftPos = p, pos
	}
}

// ScanString scans the string token whose opening quote is at src[pos] into *s.
func ScanString(src []byte, pos int, s *String) {
	// The common case first: no escape and no problem before the closing quote.
	i, acc := SkipOrdinary(src, pos+1, 0) // acc: the bytes skipped, ORed
	if i < len(src) && src[i] == '"' {
		*s = String{End: i + 1, NonASCII: acc&0x8080808080808080 != 0}
		return
	}
	*s = String{}
	scanRest(src, pos, i, acc, s)
}

// scanRest continues ScanString at i, with acc the ORed bytes so far.
func scanRest(src []byte, pos, i int, acc uint64, s *String) {
	hi := -1 // position of a pending high-surrogate escape
	for {
		if hi < 0 {
			// Skip 8 ordinary bytes at a time (not while a high surrogate waits: the next byte
			// decides whether it is alone).
			i, acc = SkipOrdinary(src, i, acc)
		}
		if i >= len(src) {
			s.Hard, s.HardPos = Unterminated, pos
			s.NonASCII = acc&0x8080808080808080 != 0
			return
		}
		switch b := src[i]; {
		case b == '"':
			if hi >= 0 {
				s.soft(LoneHigh, hi)
			}
			s.End = i + 1
			s.NonASCII = acc&0x8080808080808080 != 0
			return
		case b == '\\':
			s.Escaped = true
			if i+1 >= len(src) {
				s.Hard, s.HardPos = Unterminated, pos
				s.NonASCII = acc&0x8080808080808080 != 0
				return
			}
			e := src[i+1]
			if e == 'u' {
				r, ok := hex4(src, i+2)
				if !ok {
					s.Hard, s.HardPos, s.Cut = BadUnicode, i, i+6 > len(src)
					s.NonASCII = acc&0x8080808080808080 != 0
					return
				}
				switch {
				case r >= 0xD800 && r <= 0xDBFF:
					s.Surrogate = true
					if hi >= 0 {
						s.soft(HighAfterHigh, i)
					}
					hi = i
				case r >= 0xDC00 && r <= 0xDFFF:
					s.Surrogate = true
					if hi < 0 {
						s.soft(LowWithoutHigh, i)
					}
					hi = -1
				case hi >= 0:
					s.soft(LoneHigh, hi)
					hi = -1
				}
				if r == 0 {
					s.NUL = true
					s.soft(NULEscape, i)
				}
				i += 6
				continue
			}
			if hi >= 0 {
				s.soft(LoneHigh, hi)
				hi = -1
			}
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			default:
				s.Hard, s.HardPos = BadEscape, i
				s.NonASCII = acc&0x8080808080808080 != 0
				return
			}
		case b < 0x20:
			s.Hard, s.HardPos = ControlChar, i
			s.NonASCII = acc&0x8080808080808080 != 0
			return
		default:
			if hi >= 0 {
				s.soft(LoneHigh, hi)
				hi = -1
			}
			acc |= uint64(b)
			i++
		}
	}
}

// SkipOrdinary skips ordinary string bytes 8 at a time from i: it returns where it stopped (at
// the first '"', '\\' or control byte, or with fewer than 8 bytes left) and acc ORed with the
// bytes it skipped. It is small enough to be inlined: a caller in a hot loop can try it for a
// plain string (stopped at its closing quote) before calling ScanString.
func SkipOrdinary(src []byte, i int, acc uint64) (int, uint64) {
	for i+8 <= len(src) {
		w := binary.LittleEndian.Uint64(src[i:])
		if m := specialBytes(w); m != 0 {
			n := bits.TrailingZeros64(m) >> 3
			return i + n, acc | w&(1<<(8*n)-1)
		}
		acc |= w
		i += 8
	}
	return i, acc
}

// specialBytes returns a mask whose lowest set bit is the high bit of the first byte of w (in
// little-endian order) that is '"', '\\' or below 0x20; it is 0 when w has none. Bits above
// the lowest may be false positives.
func specialBytes(w uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	return ((w - lsb*0x20) | ((w ^ lsb*'"') - lsb) | ((w ^ lsb*'\\') - lsb)) &^ w & msb
}

// Hex4 decodes the four hexadecimal digits at src[i:] (of a \u escape); ok is false when there
// are fewer than four or one is not a hexadecimal digit.
func Hex4(src []byte, i int) (r rune, ok bool) { return hex4(src, i) }

func hex4(src []byte, i int) (rune, bool) {
	if i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, b := range src[i : i+4] {
		switch {
		case b >= '0' && b <= '9':
			b -= '0'
		case b >= 'a' && b <= 'f':
			b -= 'a' - 10
		case b >= 'A' && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(b)
	}
	return r, true
}
