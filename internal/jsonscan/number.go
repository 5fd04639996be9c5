package jsonscan

// Number is what ScanNumber found: the token's parts as positions in the input.
type Number struct {
	// End is the position after the number as RFC 8259's grammar reads it (after the "0" of
	// a LeadingZero number). When Problem is one of the No*Digit ones it is where the digit
	// was expected.
	End int
	Neg bool
	// IntStart..IntEnd are the integer digits; FracStart..FracEnd the fraction's (HasFrac: a
	// '.' was there); ExpStart..ExpEnd the exponent's digits (HasExp: an 'e' or 'E' was
	// there), ExpNeg its sign.
	IntStart, IntEnd   int
	FracStart, FracEnd int
	ExpStart, ExpEnd   int
	HasFrac, HasExp    bool
	ExpNeg             bool
	// Problem is what is wrong (OK: nothing); Cut says the input ended where a digit was
	// expected.
	Problem Problem
	Cut     bool
}

// ScanNumber scans the number token starting at src[pos] (a '-' or a digit) into *n. It does
// not look at what follows the number.
func ScanNumber(src []byte, pos int, n *Number) {
	*n = Number{IntStart: pos}
	i := pos
	if src[i] == '-' {
		n.Neg = true
		i++
		n.IntStart = i
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
		n.IntEnd, n.End = i, i
		if i < len(src) && isDigit(src[i]) {
			n.Problem = LeadingZero
			return
		}
	case i < len(src) && src[i] >= '1' && src[i] <= '9':
		i = digits(src, i)
		n.IntEnd = i
	default:
		n.fail(src, i, NoIntDigit)
		return
	}
	if i < len(src) && src[i] == '.' {
		n.HasFrac = true
		n.FracStart = i + 1
		if i, n.FracEnd = digitRun(src, n.FracStart); i == n.FracStart {
			n.fail(src, i, NoFracDigit)
			return
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		n.HasExp = true
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			n.ExpNeg = src[i] == '-'
			i++
		}
		n.ExpStart = i
		if i, n.ExpEnd = digitRun(src, i); i == n.ExpStart {
			n.fail(src, i, NoExpDigit)
			return
		}
	}
	n.End = i
}

// fail records problem p where a digit was expected at i.
func (n *Number) fail(src []byte, i int, p Problem) {
	n.End, n.Problem, n.Cut = i, p, i >= len(src)
}

// digitRun returns the end of the digits at src[i:], twice.
func digitRun(src []byte, i int) (int, int) {
	e := digits(src, i)
	return e, e
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func digits(src []byte, i int) int {
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	return i
}

// Literal checks for the literal word (true, false, null) at src[pos]. It returns the position
// after it when ok; otherwise cut says whether the input ended within a prefix of word (more
// input could have completed it). It does not look at what follows the word.
func Literal(src []byte, pos int, word string) (end int, ok, cut bool) {
	for i := 0; i < len(word); i++ {
		if pos+i >= len(src) {
			return 0, false, true
		}
		if src[pos+i] != word[i] {
			return 0, false, false
		}
	}
	return pos + len(word), true, false
}
