package jsonb_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

type canonCase struct {
	name string
	in   string
	want string // expected rendering when err is nil
	err  error  // expected sentinel
}

// observedCases are the rows of flowker-contract.md §5.4 "Observed jsonb::text outputs"
// (PostgreSQL 15.18), one case per input.
var observedCases = []canonCase{
	{name: "sort by length then bytes", in: `{"b":1,"a":2,"aa":3,"c":4}`, want: `{"a": 2, "b": 1, "c": 4, "aa": 3}`},
	{name: "sort lengths 1-3", in: `{"bb":1,"a":2,"ccc":3,"b":4}`, want: `{"a": 2, "b": 4, "bb": 1, "ccc": 3}`},
	{name: "ascii order", in: `{"a":1,"B":2,"_":3,"Z":4,"0":5}`, want: `{"0": 5, "B": 2, "Z": 4, "_": 3, "a": 1}`},
	{name: "utf8 byte length", in: `{"é":1,"z":2,"ab":3,"zz":4}`, want: `{"z": 2, "ab": 3, "zz": 4, "é": 1}`},
	{name: "utf8 byte length 3", in: `{"€":1,"aaa":2,"é":3}`, want: `{"é": 3, "aaa": 2, "€": 1}`},
	{name: "nested with empty key", in: `{"a": {"b": [1, {"d": 1, "c": [true]}]}, "": 0}`, want: `{"": 0, "a": {"b": [1, {"c": [true], "d": 1}]}}`},
	{name: "duplicate last wins", in: `{"a":1,"a":2}`, want: `{"a": 2}`},
	{name: "duplicate object replaced whole", in: `{"a":{"y":1,"x":2},"a":{"z":3}}`, want: `{"a": {"z": 3}}`},
	{name: "nested sort", in: `{"k":{"zz":1,"z":{"bb":1,"a":2}}}`, want: `{"k": {"z": {"a": 2, "bb": 1}, "zz": 1}}`},
	{name: "empty object", in: `{}`, want: `{}`},
	{name: "empty array", in: `[]`, want: `[]`},
	{name: "member empty array", in: `{"a":[]}`, want: `{"a": []}`},
	{name: "member empty object", in: `{"a":{}}`, want: `{"a": {}}`},
	{name: "nested arrays", in: `[[1,2],[],{}]`, want: `[[1, 2], [], {}]`},
	{name: "array order kept", in: `[3,1,2]`, want: `[3, 1, 2]`},
	{name: "whitespace", in: `   {  "a"  :  [ 1 , 2 ] ,"b":null }`, want: `{"a": [1, 2], "b": null}`},
	{name: "literals", in: `{"t":true,"f":false,"n":null}`, want: `{"f": false, "n": null, "t": true}`},
	{name: "scalar string", in: `"scalar"`, want: `"scalar"`},
	{name: "scalar number", in: `42`, want: `42`},
	{name: "quote backslash slash", in: `{"s":"quote \" backslash \\ slash \/ "}`, want: `{"s": "quote \" backslash \\ slash / "}`},
	{name: "short escapes", in: `{"s":"\b\f\n\r\t"}`, want: `{"s": "\b\f\n\r\t"}`},
	{name: "unicode control escapes", in: `{"s":"\u001F\u000B\u0008\u000C"}`, want: `{"s": "\u001f\u000b\b\f"}`},
	{name: "DEL raw", in: `{"s":"\u0001\u001f\u007f"}`, want: "{\"s\": \"\\u0001\\u001f\x7f\"}"},
	{name: "html raw", in: `{"s":"<>&'"}`, want: `{"s": "<>&'"}`},
	{name: "html escaped", in: `{"s":"\u003c\u003e\u0026"}`, want: `{"s": "<>&"}`},
	{name: "e acute", in: `{"s":"é\u00e9"}`, want: "{\"s\": \"\xc3\xa9\xc3\xa9\"}"},
	{name: "U+2028", in: `{"s":"\u2028"}`, want: "{\"s\": \"\xe2\x80\xa8\"}"},
	{name: "surrogate pair", in: `{"s":"\ud83d\ude00"}`, want: `{"s": "😀"}`},
	{name: "escaped keys", in: `{"ke\"y":1,"k\\y":2}`, want: `{"k\\y": 2, "ke\"y": 1}`},
	{name: "u0000", in: `{"s":"\u0000"}`, err: jsonb.ErrUnsupportedEscape},
	{name: "lone high surrogate", in: `{"s":"\ud83d"}`, err: jsonb.ErrLoneSurrogate},
	{name: "scale 1.0", in: `{"n":1.0}`, want: `{"n": 1.0}`},
	{name: "scale 1.50", in: `{"n":1.50}`, want: `{"n": 1.50}`},
	{name: "scale 0.10", in: `{"n":0.10}`, want: `{"n": 0.10}`},
	{name: "1e3", in: `1e3`, want: `1000`},
	{name: "1E3", in: `1E3`, want: `1000`},
	{name: "1E+2", in: `1E+2`, want: `100`},
	{name: "1e+21", in: `1e+21`, want: `1000000000000000000000`},
	{name: "1.5e2", in: `1.5e2`, want: `150`},
	{name: "1.50e1", in: `1.50e1`, want: `15.0`},
	{name: "100e-2", in: `100e-2`, want: `1.00`},
	{name: "1e-3", in: `1e-3`, want: `0.001`},
	{name: "1e-7", in: `1e-7`, want: `0.0000001`},
	{name: "1e-07", in: `1e-07`, want: `0.0000001`},
	{name: "-1.23e-5", in: `-1.23e-5`, want: `-0.0000123`},
	{name: "-0", in: `-0`, want: `0`},
	{name: "-0.0", in: `-0.0`, want: `0.0`},
	{name: "0e10", in: `0e10`, want: `0`},
	{name: "-1.0e-0", in: `-1.0e-0`, want: `-1.0`},
	{name: "big integer", in: `12345678901234567890123`, want: `12345678901234567890123`},
	{name: "2^53+1", in: `9007199254740993`, want: `9007199254740993`},
	{name: "long fraction", in: `3.141592653589793238462643383279`, want: `3.141592653589793238462643383279`},
	{name: "1e100", in: `1e100`, want: "1" + strings.Repeat("0", 100)},
	{name: "5e-324", in: `5e-324`, want: "0." + strings.Repeat("0", 323) + "5"},
	{name: "max float64", in: `1.7976931348623157e+308`, want: "17976931348623157" + strings.Repeat("0", 292)},
}

// edgeCases go beyond the observed table. Expected values follow the §5.4 rules; the ones
// marked [pg] were also checked against PostgreSQL 15.18 (see pg_test.go).
var edgeCases = []canonCase{
	// objects
	{name: "duplicate keys at depth", in: `{"a":{"b":{"c":1,"c":2,"d":{"x":1,"x":[1]}}},"b":1,"b":{"c":3,"c":{}}}`, want: `{"a": {"b": {"c": 2, "d": {"x": [1]}}}, "b": {"c": {}}}`},
	{name: "duplicate keys three times", in: `{"k":1,"j":0,"k":2,"k":3}`, want: `{"j": 0, "k": 3}`},
	{name: "duplicate via escapes", in: `{"a":1,"\u0061":2,"\/":3,"/":4}`, want: `{"/": 4, "a": 2}`},
	{name: "multibyte key order", in: `{"😀":1,"€":2,"é":3,"zzzz":4,"zzz":5,"":6,"ÿ":7}`, want: `{"": 6, "é": 3, "ÿ": 7, "zzz": 5, "€": 2, "zzzz": 4, "😀": 1}`},
	{name: "key order bytewise beyond ascii", in: `{"é":1,"Ā":2,"ß":3}`, want: `{"ß": 3, "é": 1, "Ā": 2}`},
	{name: "escaped key length counts decoded bytes", in: `{"\u00e9":1,"ab":2,"\n":3,"abc":4}`, want: `{"\n": 3, "ab": 2, "é": 1, "abc": 4}`},
	{name: "control key", in: `{"\u001f":1,"\u0001":2}`, want: `{"\u0001": 2, "\u001f": 1}`},
	{name: "many keys", in: `{"m":1,"l":2,"k":3,"j":4,"i":5,"h":6,"g":7,"f":8,"e":9,"d":10,"c":11,"b":12,"a":13,"n":14,"a":15,"bb":16,"b":17}`, want: `{"a": 15, "b": 17, "c": 11, "d": 10, "e": 9, "f": 8, "g": 7, "h": 6, "i": 5, "j": 4, "k": 3, "l": 2, "m": 1, "n": 14, "bb": 16}`},
	{name: "object in array in object", in: `[{"b":1,"a":2},[{"d":1,"c":2}]]`, want: `[{"a": 2, "b": 1}, [{"c": 2, "d": 1}]]`},
	// strings
	{name: "all short escapes in input", in: `"\"\\\/\b\f\n\r\t"`, want: `"\"\\/\b\f\n\r\t"`},
	{name: "uppercase hex escape", in: `"\u00E9\u20AC"`, want: `"é€"`},
	{name: "escaped quote only", in: `"\u0022"`, want: `"\""`},
	{name: "escaped backslash via u", in: `"\u005c"`, want: `"\\"`},
	{name: "u0020 is a space", in: `"\u0020"`, want: `" "`},
	{name: "U+2029 and emoji raw", in: `"\u2029😀"`, want: "\"\xe2\x80\xa9😀\""},
	{name: "surrogate pair uppercase", in: `"\uD83D\uDE00x"`, want: `"😀x"`},
	{name: "max code point", in: `"\udbff\udfff"`, want: "\"\xf4\x8f\xbf\xbf\""},
	{name: "empty string", in: `""`, want: `""`},
	{name: "raw DEL", in: "\"\x7f\"", want: "\"\x7f\""},
	// numbers
	{name: "zero", in: `0`, want: `0`},
	{name: "negative", in: `-12.50`, want: `-12.50`},
	{name: "negative zero fraction", in: `-0.000`, want: `0.000`},
	{name: "negative zero exponent", in: `-0e-3`, want: `0.000`},
	{name: "zero with negative exponent keeps scale", in: `0.0e-2`, want: `0.000`},
	{name: "zero huge exponent", in: `0e1073741822`, want: `0`},
	{name: "exponent leading zeros", in: `1e0005`, want: `100000`},
	{name: "exponent plus zero", in: `2.5E+0`, want: `2.5`},
	{name: "exponent shifts into integer", in: `0.00123e2`, want: `0.123`},
	{name: "exponent exact integer", in: `0.00123e5`, want: `123`},
	{name: "exponent past digits", in: `-0.00123e7`, want: `-12300`},
	{name: "leading zero fraction exponent", in: `0.5e-1`, want: `0.05`},
	{name: "big exponent", in: `1e131071`, want: "1" + strings.Repeat("0", 131071)},
	{name: "small exponent", in: `1e-16383`, want: "0." + strings.Repeat("0", 16382) + "1"},
	{name: "long integer", in: strings.Repeat("9", 131072), want: strings.Repeat("9", 131072)},
	{name: "long fraction max scale", in: "0." + strings.Repeat("1", 16383), want: "0." + strings.Repeat("1", 16383)},
	// top level and whitespace
	{name: "true", in: ` true `, want: `true`},
	{name: "false", in: "\tfalse\r\n", want: `false`},
	{name: "null", in: `null`, want: `null`},
	{name: "deep nesting at limit", in: strings.Repeat("[", jsonb.MaxDepth) + strings.Repeat("]", jsonb.MaxDepth), want: strings.Repeat("[", jsonb.MaxDepth) + strings.Repeat("]", jsonb.MaxDepth)},
	{name: "deep objects", in: strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100), want: strings.Repeat(`{"a": `, 100) + "1" + strings.Repeat("}", 100)},

	// errors: syntax
	{name: "empty input", in: ``, err: jsonb.ErrSyntax},
	{name: "only whitespace", in: " \n\t", err: jsonb.ErrSyntax},
	{name: "trailing garbage", in: `{} x`, err: jsonb.ErrSyntax},
	{name: "two values", in: `1 2`, err: jsonb.ErrSyntax},
	{name: "trailing bracket", in: `[1]]`, err: jsonb.ErrSyntax},
	{name: "unterminated string", in: `"abc`, err: jsonb.ErrSyntax},
	{name: "unterminated escaped string", in: `"a\n`, err: jsonb.ErrSyntax},
	{name: "backslash at end", in: `"a\`, err: jsonb.ErrSyntax},
	{name: "bad escape", in: `"\x"`, err: jsonb.ErrSyntax},
	{name: "bad escape non-ascii", in: `"\é"`, err: jsonb.ErrSyntax},
	{name: "single quote escape", in: `"\'"`, err: jsonb.ErrSyntax},
	{name: "short u escape", in: `"\u12"`, err: jsonb.ErrSyntax},
	{name: "non-hex u escape", in: `"\u12g4"`, err: jsonb.ErrSyntax},
	{name: "uppercase U escape", in: `"\U0041"`, err: jsonb.ErrSyntax},
	{name: "raw newline in string", in: "\"a\nb\"", err: jsonb.ErrSyntax},
	{name: "raw tab in string", in: "\"a\tb\"", err: jsonb.ErrSyntax},
	{name: "raw NUL in string", in: "\"a\x00b\"", err: jsonb.ErrSyntax},
	{name: "raw NUL outside string", in: "[1,\x002]", err: jsonb.ErrSyntax},
	{name: "raw control after escape", in: "\"\\n\x01\"", err: jsonb.ErrSyntax},
	{name: "leading zero", in: `01`, err: jsonb.ErrSyntax},
	{name: "negative leading zero", in: `-01`, err: jsonb.ErrSyntax},
	{name: "plus sign", in: `+1`, err: jsonb.ErrSyntax},
	{name: "leading dot", in: `.5`, err: jsonb.ErrSyntax},
	{name: "trailing dot", in: `1.`, err: jsonb.ErrSyntax},
	{name: "dot before exponent", in: `1.e5`, err: jsonb.ErrSyntax},
	{name: "empty exponent", in: `1e`, err: jsonb.ErrSyntax},
	{name: "signed empty exponent", in: `1e+`, err: jsonb.ErrSyntax},
	{name: "bare minus", in: `-`, err: jsonb.ErrSyntax},
	{name: "minus space", in: `- 1`, err: jsonb.ErrSyntax},
	{name: "hex number", in: `0x10`, err: jsonb.ErrSyntax},
	{name: "underscore number", in: `1_000`, err: jsonb.ErrSyntax},
	{name: "NaN", in: `NaN`, err: jsonb.ErrSyntax},
	{name: "Infinity", in: `Infinity`, err: jsonb.ErrSyntax},
	{name: "-Infinity", in: `-Infinity`, err: jsonb.ErrSyntax},
	{name: "number then letters", in: `1x`, err: jsonb.ErrSyntax},
	{name: "True", in: `True`, err: jsonb.ErrSyntax},
	{name: "tru", in: `tru`, err: jsonb.ErrSyntax},
	{name: "nulls", in: `nulls`, err: jsonb.ErrSyntax},
	{name: "trailing comma array", in: `[1,]`, err: jsonb.ErrSyntax},
	{name: "trailing comma object", in: `{"a":1,}`, err: jsonb.ErrSyntax},
	{name: "leading comma", in: `[,1]`, err: jsonb.ErrSyntax},
	{name: "missing colon", in: `{"a" 1}`, err: jsonb.ErrSyntax},
	{name: "missing value", in: `{"a":}`, err: jsonb.ErrSyntax},
	{name: "non-string key", in: `{1:2}`, err: jsonb.ErrSyntax},
	{name: "single-quoted string", in: `'a'`, err: jsonb.ErrSyntax},
	{name: "unclosed array", in: `[1,2`, err: jsonb.ErrSyntax},
	{name: "unclosed object", in: `{"a":1`, err: jsonb.ErrSyntax},
	{name: "mismatched close", in: `[1}`, err: jsonb.ErrSyntax},
	{name: "comment", in: `[1 /* x */]`, err: jsonb.ErrSyntax},
	{name: "form feed is not whitespace", in: "\f1", err: jsonb.ErrSyntax},
	{name: "BOM", in: "\ufeff{}", err: jsonb.ErrSyntax},
	{name: "nbsp outside string", in: "[1,\u00a02]", err: jsonb.ErrSyntax},
	// errors: Unicode escapes
	{name: "u0000 in key", in: `{"a\u0000":1}`, err: jsonb.ErrUnsupportedEscape},
	{name: "u0000 after text", in: `"abc\u0000"`, err: jsonb.ErrUnsupportedEscape},
	{name: "lone low surrogate", in: `"\udc00"`, err: jsonb.ErrLoneSurrogate},
	{name: "high then char", in: `"\ud83dx"`, err: jsonb.ErrLoneSurrogate},
	{name: "high then high", in: `"\ud83d\ud83d"`, err: jsonb.ErrLoneSurrogate},
	{name: "high then escape", in: `"\ud83d\n"`, err: jsonb.ErrLoneSurrogate},
	{name: "high then non-surrogate u", in: `"\ud83d\u0041"`, err: jsonb.ErrLoneSurrogate},
	{name: "high then u0000", in: `"\ud83d\u0000"`, err: jsonb.ErrLoneSurrogate},
	{name: "low then high", in: `"\ude00\ud83d"`, err: jsonb.ErrLoneSurrogate},
	// errors: encoding
	{name: "invalid byte", in: "\"\xff\"", err: jsonb.ErrInvalidUTF8},
	{name: "truncated sequence", in: "\"\xc3\"", err: jsonb.ErrInvalidUTF8},
	{name: "overlong encoding", in: "\"\xc0\xaf\"", err: jsonb.ErrInvalidUTF8},
	{name: "utf8 encoded surrogate", in: "\"\xed\xa0\x80\"", err: jsonb.ErrInvalidUTF8},
	{name: "beyond U+10FFFF", in: "\"\xf4\x90\x80\x80\"", err: jsonb.ErrInvalidUTF8},
	{name: "invalid utf8 wins over later syntax error", in: "[1,,\"\xff\"", err: jsonb.ErrInvalidUTF8},
	// errors: numbers
	{name: "1e999999999", in: `1e999999999`, err: jsonb.ErrNumberOverflow},
	{name: "1e-999999999", in: `1e-999999999`, err: jsonb.ErrNumberOverflow},
	{name: "huge exponent digits", in: `1e99999999999999999999999999999`, err: jsonb.ErrNumberOverflow},
	{name: "zero exponent at pg15 bound", in: `0e1073741823`, err: jsonb.ErrNumberOverflow},
	{name: "too many integer digits", in: `1e131072`, err: jsonb.ErrNumberOverflow},
	{name: "too many integer digits by mantissa", in: `12345e131068`, err: jsonb.ErrNumberOverflow},
	{name: "too many integer digits literal", in: "1" + strings.Repeat("0", 131072), err: jsonb.ErrNumberOverflow},
	{name: "scale too large", in: `1e-16384`, err: jsonb.ErrNumberOverflow},
	{name: "zero scale too large", in: `0e-16384`, err: jsonb.ErrNumberOverflow},
	{name: "zero fraction scale too large", in: `0.0e-16383`, err: jsonb.ErrNumberOverflow},
	{name: "literal scale too large", in: "0." + strings.Repeat("0", 16384), err: jsonb.ErrNumberOverflow},
	{name: "overflow inside object", in: `{"a":[1,{"b":1e200000}]}`, err: jsonb.ErrNumberOverflow},
	// errors: which error wins. PostgreSQL lexes one token ahead of its parser: a token's
	// lexical error beats a structural error at that token and the conversion error of the
	// number before it.
	{name: "escape error beats trailing-value error", in: `1 "\u0000"`, err: jsonb.ErrUnsupportedEscape},
	{name: "surrogate error beats missing colon", in: `{"a" "\ud83d"}`, err: jsonb.ErrLoneSurrogate},
	{name: "escape error beats missing comma", in: `["a" "\u0000"]`, err: jsonb.ErrUnsupportedEscape},
	{name: "invalid next token beats overflow", in: `[1e999999 .]`, err: jsonb.ErrSyntax},
	{name: "invalid next word beats overflow", in: `1e999999 x`, err: jsonb.ErrSyntax},
	{name: "invalid next string beats overflow", in: `[1e999999, "\u0000"]`, err: jsonb.ErrNumberOverflow},
	{name: "overflow beats structural error after it", in: `[1e999999 2]`, err: jsonb.ErrNumberOverflow},
	{name: "overflow beats error in the next but one token", in: `[1e999999 2 .]`, err: jsonb.ErrNumberOverflow},
	{name: "next string error beats overflow", in: `{"a":1e999999 "\ud83d"}`, err: jsonb.ErrLoneSurrogate},
	{name: "next number token error beats overflow", in: `[1e999999 01]`, err: jsonb.ErrSyntax},
	// errors: depth
	{name: "too deep arrays", in: strings.Repeat("[", jsonb.MaxDepth+1) + strings.Repeat("]", jsonb.MaxDepth+1), err: jsonb.ErrTooDeep},
	{name: "too deep objects", in: strings.Repeat(`{"a":`, jsonb.MaxDepth+1) + "1" + strings.Repeat("}", jsonb.MaxDepth+1), err: jsonb.ErrTooDeep},
	{name: "too deep unclosed", in: strings.Repeat("[", 1<<20), err: jsonb.ErrTooDeep},
}

func runCases(t *testing.T, cases []canonCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := jsonb.Canonical([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Canonical(%.80q) error = %v, want %v", tc.in, err, tc.err)
				}
				var je *jsonb.Error
				if !errors.As(err, &je) {
					t.Fatalf("error %v is not a *jsonb.Error", err)
				}
				if je.Offset < 0 || je.Offset > len(tc.in) || !strings.Contains(err.Error(), "byte offset") {
					t.Fatalf("error %q has offset %d outside the input of %d bytes", err, je.Offset, len(tc.in))
				}
				if got != nil {
					t.Fatalf("Canonical returned %q with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Canonical(%.80q) error: %v", tc.in, err)
			}
			if string(got) != tc.want {
				t.Fatalf("Canonical(%.200q)\n got %.200q\nwant %.200q", tc.in, got, tc.want)
			}
		})
	}
}

func TestObservedTable(t *testing.T) { runCases(t, observedCases) }

func TestEdgeCases(t *testing.T) { runCases(t, edgeCases) }

func TestErrorOffsets(t *testing.T) {
	for _, tc := range []struct {
		in     string
		offset int
		err    error
	}{
		{`{"a":1 x}`, 7, jsonb.ErrSyntax},
		{`{"a":"\q"}`, 6, jsonb.ErrSyntax},
		{`[1, "abc`, 4, jsonb.ErrSyntax},
		{`["ok", "x\u0000"]`, 9, jsonb.ErrUnsupportedEscape},
		{`["\ud83d!"]`, 2, jsonb.ErrLoneSurrogate},
		{"[\"ab\xffc\"]", 4, jsonb.ErrInvalidUTF8},
		{`[0, 1e999999]`, 4, jsonb.ErrNumberOverflow},
		{"[\"a\x01\"]", 3, jsonb.ErrSyntax},
		{`{"a":01}`, 5, jsonb.ErrSyntax},
		{`[[[`, 3, jsonb.ErrSyntax},
	} {
		_, err := jsonb.Canonical([]byte(tc.in))
		var je *jsonb.Error
		if !errors.As(err, &je) || !errors.Is(err, tc.err) || je.Offset != tc.offset {
			t.Errorf("Canonical(%q) = %v; want %v at offset %d", tc.in, err, tc.err, tc.offset)
		}
	}
}

type vectorFile struct {
	Source  string `json:"source"`
	Vectors []struct {
		Input     string `json:"input"`
		Canonical string `json:"canonical"`
	} `json:"vectors"`
}

// loadVectors reads the PostgreSQL-generated vectors copied into testdata (the package's
// tests must not depend on files outside the repository).
func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "jsonb-canonical-vectors.json"))
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(vf.Vectors) == 0 {
		t.Fatal("no vectors in testdata/jsonb-canonical-vectors.json")
	}
	return vf
}

func TestVectors(t *testing.T) {
	vf := loadVectors(t)
	for i, v := range vf.Vectors {
		got, err := jsonb.Canonical([]byte(v.Input))
		if err != nil {
			t.Errorf("vector %d: Canonical(%q): %v", i, v.Input, err)
			continue
		}
		if string(got) != v.Canonical {
			t.Errorf("vector %d: Canonical(%q)\n got %q\nwant %q", i, v.Input, got, v.Canonical)
		}
	}
}

func TestIdempotent(t *testing.T) {
	var inputs []string
	for _, v := range loadVectors(t).Vectors {
		inputs = append(inputs, v.Input)
	}
	for _, tc := range append(append([]canonCase{}, observedCases...), edgeCases...) {
		if tc.err == nil {
			inputs = append(inputs, tc.in)
		}
	}
	for _, in := range inputs {
		once, err := jsonb.Canonical([]byte(in))
		if err != nil {
			t.Fatalf("Canonical(%.80q): %v", in, err)
		}
		twice, err := jsonb.Canonical(once)
		if err != nil {
			t.Fatalf("Canonical(Canonical(%.80q)) = error %v", in, err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent for %.80q:\n once  %.200q\n twice %.200q", in, once, twice)
		}
	}
}

func TestAppendCanonical(t *testing.T) {
	prefix := []byte("prefix|")
	dst := append(make([]byte, 0, 64), prefix...)
	out, err := jsonb.AppendCanonical(dst, []byte(`{"b":[1e2],"a":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `prefix|{"a": "x", "b": [100]}`; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	out, err = jsonb.AppendCanonical(dst, []byte(`{"b":`))
	if err == nil || string(out) != string(prefix) {
		t.Fatalf("on error got (%q, %v), want dst unchanged and an error", out, err)
	}
}

func TestCanonicalizerReuse(t *testing.T) {
	var c jsonb.Canonicalizer
	vf := loadVectors(t)
	var buf []byte
	// Interleave failures with successes: a failed call must not disturb the next one.
	for i, v := range vf.Vectors {
		if _, err := c.AppendCanonical(buf[:0], []byte(`{"a":[1,{"b":"\u0000"}]}`)); !errors.Is(err, jsonb.ErrUnsupportedEscape) {
			t.Fatalf("want ErrUnsupportedEscape, got %v", err)
		}
		var err error
		buf, err = c.AppendCanonical(buf[:0], []byte(v.Input))
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if string(buf) != v.Canonical {
			t.Fatalf("vector %d: got %q want %q", i, buf, v.Canonical)
		}
	}
}

// TestStringScanBoundaries puts the byte that ends a fast string scan at every position of
// the 8-byte words the scanner reads, among bytes that look like '"', '\' or control
// characters once their high bit is cleared (0xA2 in ¢, 0xDC in ܐ, 0x9F in ß).
func TestStringScanBoundaries(t *testing.T) {
	for _, fill := range []string{"a", "¢", "ܐ", "ß"} {
		for n := range 24 {
			body := strings.Repeat(fill, n)
			for _, tc := range []struct{ in, want string }{
				{`"` + body + `"`, `"` + body + `"`},
				{`"` + body + `\n` + body + `"`, `"` + body + `\n` + body + `"`},
				{`"` + body + `\u0041` + body + `"`, `"` + body + `A` + body + `"`},
				{`["` + body + `",1]`, `["` + body + `", 1]`},
			} {
				got, err := jsonb.Canonical([]byte(tc.in))
				if err != nil || string(got) != tc.want {
					t.Fatalf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
			}
			for _, bad := range []string{"\x01", "\x1f", "\n"} {
				in := `"` + body + bad + body + `"`
				_, err := jsonb.Canonical([]byte(in))
				var je *jsonb.Error
				if !errors.As(err, &je) || !errors.Is(err, jsonb.ErrSyntax) || je.Offset != 1+len(body) {
					t.Fatalf("Canonical(%q) = %v; want ErrSyntax at offset %d", in, err, 1+len(body))
				}
			}
			if _, err := jsonb.Canonical([]byte(`"` + body)); !errors.Is(err, jsonb.ErrSyntax) {
				t.Fatalf("unterminated %q: got %v", `"`+body, err)
			}
		}
	}
}

// TestOutputLimit: numbers can expand about 16000-fold, so the rendering's size is checked
// before anything is allocated for it.
func TestOutputLimit(t *testing.T) {
	n := jsonb.MaxLen/131072 + 1
	in := "[" + strings.Repeat("1e131071,", n-1) + "1e131071]"
	out, err := jsonb.Canonical([]byte(in))
	if !errors.Is(err, jsonb.ErrTooLarge) || out != nil {
		t.Fatalf("Canonical(%d times 1e131071) = %d bytes, %v; want ErrTooLarge", n, len(out), err)
	}
	// Duplicates that are dropped do not count.
	in = `{"a":` + strings.Repeat(`1e131071,"a":`, n) + `1}`
	out, err = jsonb.Canonical([]byte(in))
	if err != nil || string(out) != `{"a": 1}` {
		t.Fatalf("got %.100q, %v; want {\"a\": 1}", out, err)
	}
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`say "hi" \ /`, `"say \"hi\" \\ /"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x0b\x1f\x7f", "\"\\u0000\\u0001\\u000b\\u001f\x7f\""},
		{"<>&' é € 😀 \u2028", "\"<>&' é € 😀 \u2028\""},
		{"bad \xff byte", "\"bad \xff byte\""},
	} {
		if got := string(jsonb.AppendString([]byte("x"), tc.in)); got != "x"+tc.want {
			t.Errorf("AppendString(%q) = %q, want %q", tc.in, got, "x"+tc.want)
		}
	}
	// For valid input without U+0000, AppendString agrees with Canonical of the same string.
	for _, s := range []string{"a\"b\\c\x01\x1f\ttab", "é€😀\u2028", "/</script>"} {
		lit, _ := json.Marshal(s)
		want, err := jsonb.Canonical(lit)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonb.AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %q, Canonical = %q", s, got, want)
		}
	}
	// What the documentation promises for invalid input.
	if _, err := jsonb.Canonical(jsonb.AppendString(nil, "a\x00b")); !errors.Is(err, jsonb.ErrUnsupportedEscape) {
		t.Errorf("U+0000: got %v, want ErrUnsupportedEscape", err)
	}
	if _, err := jsonb.Canonical(jsonb.AppendString(nil, "a\xffb")); !errors.Is(err, jsonb.ErrInvalidUTF8) {
		t.Errorf("invalid UTF-8: got %v, want ErrInvalidUTF8", err)
	}
}

func TestAuditContextFixture(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "audit-context.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "audit-context.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jsonb.Canonical(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Fatalf("rendering of testdata/audit-context.json differs from audit-context.golden:\n got %s\nwant %s", got, want)
	}
}
