package jsonb

import "github.com/flowker-audit/flowker-audit/internal/jsonscan"

// Numbers follow PostgreSQL's numeric input (numeric_in, set_var_from_str) and output
// (get_str_from_var): the value is exact, the display scale is the number of fractional
// digits written minus the exponent (at least 0), and output is plain decimal with exactly
// that many fractional digits.

// numParts is a lexically valid JSON number token split into its parts.
type numParts struct {
	neg        bool
	intDigits  []byte // at least one digit, no leading zero unless it is "0"
	fracDigits []byte // possibly empty
	exp        int64  // saturated at ±(maxExponent+1)
}

// digit returns the i-th digit of intDigits followed by fracDigits, or '0' outside them.
func (p *numParts) digit(i int64) byte {
	if i < 0 {
		return '0'
	}
	if i < int64(len(p.intDigits)) {
		return p.intDigits[i]
	}
	i -= int64(len(p.intDigits))
	if i < int64(len(p.fracDigits)) {
		return p.fracDigits[i]
	}
	return '0'
}

// layout describes the plain-decimal rendering of a number.
type layout struct {
	zero   bool
	first  int64 // index of the first non-zero digit (nonzero values only)
	point  int64 // digits before the decimal point, counted in intDigits+fracDigits
	dscale int64 // fractional digits to print
}

func (p *numParts) layout() layout {
	l := layout{point: int64(len(p.intDigits)) + p.exp}
	l.dscale = int64(len(p.fracDigits)) - p.exp
	if l.dscale < 0 {
		l.dscale = 0
	}
	nd := int64(len(p.intDigits) + len(p.fracDigits))
	l.first = 0
	for l.first < nd && p.digit(l.first) == '0' {
		l.first++
	}
	l.zero = l.first == nd
	return l
}

// size is the length of the rendering.
func (l *layout) size(neg bool) int64 {
	var n int64 = 1 // "0" integer part
	if !l.zero {
		if neg {
			n++
		}
		if d := l.point - l.first; d > 1 {
			n = d + n - 1
		}
	}
	if l.dscale > 0 {
		n += 1 + l.dscale
	}
	return n
}

// lexNumber checks the number token at pos like PostgreSQL's JSON lexer and splits it.
func (c *Canonicalizer) lexNumber(pos int) (numParts, int, bool, error) {
	src := c.src
	var n jsonscan.Number
	jsonscan.ScanNumber(src, pos, &n)
	var p numParts
	switch n.Problem {
	case jsonscan.LeadingZero:
		return p, 0, false, c.badNumber(pos, "leading zeros are not allowed")
	case jsonscan.NoIntDigit:
		return p, 0, false, c.badNumber(pos, "expected a digit after '-'")
	case jsonscan.NoFracDigit:
		return p, 0, false, c.badNumber(pos, "expected a digit after '.'")
	case jsonscan.NoExpDigit:
		return p, 0, false, c.badNumber(pos, "expected a digit in the exponent")
	}
	p.neg = n.Neg
	p.intDigits = src[n.IntStart:n.IntEnd]
	if n.HasFrac {
		p.fracDigits = src[n.FracStart:n.FracEnd]
	}
	for _, d := range src[n.ExpStart:n.ExpEnd] {
		if p.exp <= maxExponent {
			p.exp = p.exp*10 + int64(d-'0')
		}
	}
	if n.ExpNeg {
		p.exp = -p.exp
	}
	if n.End < len(src) && isTokenChar(src[n.End]) {
		return p, 0, false, c.badNumber(pos, "invalid character after number")
	}
	return p, n.End, n.HasExp, nil
}

// number parses the number token at pos into a node and returns the position after it and
// its output size.
func (c *Canonicalizer) number(pos int) (int, int64, error) {
	src := c.src
	p, i, hasExp, err := c.lexNumber(pos)
	if err != nil {
		return 0, 0, err
	}
	tok := src[pos:i]
	if !hasExp {
		// Fast path: the token is already plain decimal. Only a negative zero changes (it
		// loses its sign); only over-long numbers fail.
		if len(p.fracDigits) > maxScale || (p.intDigits[0] != '0' && len(p.intDigits) > maxIntDigits) {
			return 0, 0, c.afterNextToken(i, c.overflow(pos, tok))
		}
		off := pos
		if p.neg && p.intDigits[0] == '0' && allZeros(p.fracDigits) {
			off++
		}
		c.nodes = append(c.nodes, node{off: uint32(off), n: uint32(i - off), next: uint32(len(c.nodes) + 1), kind: kindNumber})
		return i, int64(i - off), nil
	}
	if p.exp > maxExponent-1 || p.exp < -(maxExponent-1) {
		return 0, 0, c.afterNextToken(i, newError(ErrNumberOverflow, pos, "number %q: exponent out of range", truncate(tok)))
	}
	l := p.layout()
	if l.dscale > maxScale || (!l.zero && l.point-l.first > maxIntDigits) {
		return 0, 0, c.afterNextToken(i, c.overflow(pos, tok))
	}
	c.nodes = append(c.nodes, node{off: uint32(pos), n: uint32(i - pos), next: uint32(len(c.nodes) + 1), kind: kindNumber, flag: flagNormalize})
	return i, l.size(p.neg), nil
}

// afterNextToken returns err unless the token after end is lexically invalid, in which case
// it returns that token's error. PostgreSQL's parser works one token ahead of its lexer: it
// lexes the token after a scalar before it converts the scalar (so a number's overflow is
// reported only if the next token lexes), and it lexes a token before it checks that the token
// is allowed where it stands (so `{"a" "\u0000"}` fails with the escape's error).
func (c *Canonicalizer) afterNextToken(end int, err error) error {
	src := c.src
	pos := jsonscan.SkipSpace(src, end)
	if pos >= len(src) {
		return err
	}
	switch b := src[pos]; {
	case b == '{' || b == '}' || b == '[' || b == ']' || b == ',' || b == ':':
		return err
	case b == '"':
		if _, _, lexErr := c.str(pos); lexErr != nil {
			return lexErr
		}
		return err
	case b == '-' || (b >= '0' && b <= '9'):
		if _, _, _, lexErr := c.lexNumber(pos); lexErr != nil {
			return lexErr
		}
		return err
	default:
		e := pos
		for e < len(src) && isTokenChar(src[e]) {
			e++
		}
		switch string(src[pos:e]) {
		case "true", "false", "null":
			return err
		case "":
			return newError(ErrSyntax, pos, "unexpected %s", describe(src, pos))
		}
		return newError(ErrSyntax, pos, "invalid token %q", truncate(src[pos:e]))
	}
}

func (c *Canonicalizer) badNumber(pos int, reason string) error {
	e := pos
	for e < len(c.src) && (isTokenChar(c.src[e]) || c.src[e] == '-' || c.src[e] == '+' || c.src[e] == '.') {
		e++
	}
	return newError(ErrSyntax, pos, "invalid number %q: %s", truncate(c.src[pos:e]), reason)
}

func (c *Canonicalizer) overflow(pos int, tok []byte) error {
	return newError(ErrNumberOverflow, pos, "number %q needs more than %d digits before or %d after the decimal point", truncate(tok), maxIntDigits, maxScale)
}

func allZeros(b []byte) bool {
	for _, d := range b {
		if d != '0' {
			return false
		}
	}
	return true
}

// splitNumber splits a token that number has accepted.
func splitNumber(tok []byte) numParts {
	var p numParts
	i := 0
	if tok[0] == '-' {
		p.neg = true
		i++
	}
	is := i
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		i++
	}
	p.intDigits = tok[is:i]
	if i < len(tok) && tok[i] == '.' {
		i++
		fs := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		p.fracDigits = tok[fs:i]
	}
	if i < len(tok) { // exponent; its magnitude was checked by number
		i++
		negExp := false
		if tok[i] == '+' || tok[i] == '-' {
			negExp = tok[i] == '-'
			i++
		}
		for ; i < len(tok); i++ {
			p.exp = p.exp*10 + int64(tok[i]-'0')
		}
		if negExp {
			p.exp = -p.exp
		}
	}
	return p
}

// appendNormalized appends the plain-decimal rendering of an exponent-form token.
func appendNormalized(dst, tok []byte) []byte {
	p := splitNumber(tok)
	l := p.layout()
	if l.zero || l.point <= l.first {
		if !l.zero && p.neg {
			dst = append(dst, '-')
		}
		dst = append(dst, '0')
	} else {
		if p.neg {
			dst = append(dst, '-')
		}
		for i := l.first; i < l.point; i++ {
			dst = append(dst, p.digit(i))
		}
	}
	if l.dscale > 0 {
		dst = append(dst, '.')
		for i := l.point; i < l.point+l.dscale; i++ {
			dst = append(dst, p.digit(i))
		}
	}
	return dst
}
