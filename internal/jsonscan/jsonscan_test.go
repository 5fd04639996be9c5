package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanString(t *testing.T) {
	for _, tc := range []struct {
		in                           string
		end                          int
		escaped, nonASCII, surr, nul bool
		hard                         Problem
		hardPos                      int
		cut                          bool
		soft                         Problem
		softPos                      int
	}{
		{in: `""`, end: 2},
		{in: `"plain text, longer than eight bytes" tail`, end: 37},
		{in: `"é"`, end: 4, nonASCII: true},
		{in: "\"\xff\"", end: 3, nonASCII: true}, // UTF-8 validity is the caller's
		{in: `"a\"b\\c\/\b\f\n\r\t"`, end: 21, escaped: true},
		{in: `"\u00e9\ud83d\ude00"`, end: 20, escaped: true, surr: true},
		{in: `"abc`, hard: Unterminated, hardPos: 0},
		{in: `"abc\`, escaped: true, hard: Unterminated, hardPos: 0},
		{in: "\"ab\x01\"", hard: ControlChar, hardPos: 3},
		{in: `"a\x"`, escaped: true, hard: BadEscape, hardPos: 2},
		{in: `"\u12"}`, escaped: true, hard: BadUnicode, hardPos: 1},
		{in: `"\u12`, escaped: true, hard: BadUnicode, hardPos: 1, cut: true},
		{in: `"\u0000"`, end: 8, escaped: true, nul: true, soft: NULEscape, softPos: 1},
		{in: `"\udc00"`, end: 8, escaped: true, surr: true, soft: LowWithoutHigh, softPos: 1},
		{in: `"\ud800\ud800\udc00"`, end: 20, escaped: true, surr: true, soft: HighAfterHigh, softPos: 7},
		{in: `"\ud800"`, end: 8, escaped: true, surr: true, soft: LoneHigh, softPos: 1},
		{in: `"\ud800a"`, end: 9, escaped: true, surr: true, soft: LoneHigh, softPos: 1},
		{in: `"\ud800\n"`, end: 10, escaped: true, surr: true, soft: LoneHigh, softPos: 1},
		{in: `"\ud800\u0041"`, end: 14, escaped: true, surr: true, soft: LoneHigh, softPos: 1},
		// A lone high surrogate is met at what follows it: a soft problem before a hard one...
		{in: `"\ud800\x"`, escaped: true, surr: true, hard: BadEscape, hardPos: 7, soft: LoneHigh, softPos: 1},
		// ...but not when what follows is itself the hard problem (PostgreSQL's order).
		{in: "\"\\ud800\x01\"", escaped: true, surr: true, hard: ControlChar, hardPos: 7},
		{in: `"\ud800\uZZZZ"`, escaped: true, surr: true, hard: BadUnicode, hardPos: 7},
	} {
		var got String
		ScanString([]byte(tc.in), 0, &got)
		want := String{End: tc.end, Escaped: tc.escaped, NonASCII: tc.nonASCII, Surrogate: tc.surr, NUL: tc.nul,
			Hard: tc.hard, HardPos: tc.hardPos, Cut: tc.cut, Soft: tc.soft, SoftPos: tc.softPos}
		if got != want {
			t.Errorf("ScanString(%q)\n got %+v\nwant %+v", tc.in, got, want)
		}
	}
}

func TestScanNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Number
	}{
		{"0", Number{End: 1, IntStart: 0, IntEnd: 1}},
		{"-12.50e+3,", Number{End: 9, Neg: true, IntStart: 1, IntEnd: 3, HasFrac: true, FracStart: 4, FracEnd: 6, HasExp: true, ExpStart: 8, ExpEnd: 9}},
		{"1E-07", Number{End: 5, IntEnd: 1, HasExp: true, ExpNeg: true, ExpStart: 3, ExpEnd: 5}},
		{"012", Number{End: 1, IntEnd: 1, Problem: LeadingZero}},
		{"-", Number{End: 1, Neg: true, IntStart: 1, Problem: NoIntDigit, Cut: true}},
		{"-x", Number{End: 1, Neg: true, IntStart: 1, Problem: NoIntDigit}},
		{"1.", Number{End: 2, IntEnd: 1, HasFrac: true, FracStart: 2, FracEnd: 2, Problem: NoFracDigit, Cut: true}},
		{"1.e5", Number{End: 2, IntEnd: 1, HasFrac: true, FracStart: 2, FracEnd: 2, Problem: NoFracDigit}},
		{"1e+", Number{End: 3, IntEnd: 1, HasExp: true, ExpStart: 3, ExpEnd: 3, Problem: NoExpDigit, Cut: true}},
		{"1ex", Number{End: 2, IntEnd: 1, HasExp: true, ExpStart: 2, ExpEnd: 2, Problem: NoExpDigit}},
		{"7abc", Number{End: 1, IntEnd: 1}}, // what follows is the caller's
	} {
		var got Number
		if ScanNumber([]byte(tc.in), 0, &got); got != tc.want {
			t.Errorf("ScanNumber(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestLiteral(t *testing.T) {
	for _, tc := range []struct {
		in      string
		end     int
		ok, cut bool
	}{
		{"true", 4, true, false},
		{"nullx", 4, true, false},
		{"fal", 0, false, true},
		{"trUe", 0, false, false},
	} {
		word := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[tc.in[0]]
		if end, ok, cut := Literal([]byte(tc.in), 0, word); end != tc.end || ok != tc.ok || cut != tc.cut {
			t.Errorf("Literal(%q, %q) = %d %v %v, want %d %v %v", tc.in, word, end, ok, cut, tc.end, tc.ok, tc.cut)
		}
	}
}

// FuzzScanString cross-checks ScanString with encoding/json: a string it completes is a
// string encoding/json reads, with the escapes, surrogates and NULs it reports; one that
// encoding/json reads whole is one it completes.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"\u0000"`, `"\ud800\udc00x"`, `"\ud800"`, `"a\x"`, "\"\x01\"", `"\u12`, "\"\xff\xfe\"", `"é" tail`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || in[0] != '"' {
			in = append([]byte{'"'}, in...)
		}
		var st String
		ScanString(in, 0, &st)
		whole := json.Valid(in)
		if st.Hard != OK {
			if whole {
				t.Fatalf("encoding/json reads %q as a string; ScanString: %+v", in, st)
			}
			if st.Hard == BadUnicode && st.Cut != (st.HardPos+6 > len(in)) {
				t.Fatalf("%q: Cut %v for BadUnicode at %d", in, st.Cut, st.HardPos)
			}
			return
		}
		tok := in[:st.End]
		var v string
		if err := json.Unmarshal(tok, &v); err != nil {
			t.Fatalf("ScanString completes %q, encoding/json: %v", tok, err)
		}
		if whole && st.End != len(bytes.TrimRight(in, " \t\r\n")) {
			t.Fatalf("%q is one string; ScanString ends it at %d", in, st.End)
		}
		inner := string(tok[1 : len(tok)-1])
		if st.Escaped != strings.Contains(inner, `\`) {
			t.Fatalf("%q: Escaped %v", tok, st.Escaped)
		}
		if st.NonASCII != (strings.IndexFunc(inner, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0) {
			t.Fatalf("%q: NonASCII %v", tok, st.NonASCII)
		}
		if st.NUL != strings.Contains(inner, `\u0000`) && !strings.Contains(inner, `\\u0000`) {
			t.Fatalf("%q: NUL %v", tok, st.NUL)
		}
		if st.NUL && !strings.ContainsRune(v, 0) {
			t.Fatalf("%q: NUL reported, none decoded", tok)
		}
		// A lone surrogate decodes to U+FFFD; a string of valid UTF-8 without soft problems
		// decodes to no U+FFFD that it did not hold.
		if st.Soft == OK && utf8.ValidString(inner) &&
			strings.Count(v, "\uFFFD") > strings.Count(inner, "\uFFFD")+strings.Count(strings.ToLower(inner), `\ufffd`) {
			t.Fatalf("%q: no soft problem reported, yet it decodes to %q", tok, v)
		}
	})
}

// FuzzScanNumber cross-checks ScanNumber with encoding/json: a number it accepts (up to End)
// is valid JSON, and input that is one valid JSON number is accepted whole.
func FuzzScanNumber(f *testing.F) {
	for _, s := range []string{"0", "-1.5e+10", "01", "-", "1.", "1e", "1.5E-3x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || (in[0] != '-' && (in[0] < '0' || in[0] > '9')) {
			return
		}
		var n Number
		ScanNumber(in, 0, &n)
		whole := json.Valid(in) && n.End <= len(in)
		switch n.Problem {
		case OK, LeadingZero:
			if !json.Valid(in[:n.End]) {
				t.Fatalf("ScanNumber accepts %q up to %d, encoding/json does not", in, n.End)
			}
			if whole && n.End != len(bytes.TrimRight(in, " \t\r\n")) {
				t.Fatalf("%q is one number, ScanNumber ends it at %d", in, n.End)
			}
		default:
			if whole {
				t.Fatalf("encoding/json reads %q as a number; ScanNumber: %+v", in, n)
			}
			if n.Cut != (n.End >= len(in)) {
				t.Fatalf("%q: Cut %v at %d", in, n.Cut, n.End)
			}
		}
	})
}
