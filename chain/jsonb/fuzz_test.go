package jsonb_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

func FuzzCanonical(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		f.Add([]byte(v.Input))
	}
	for _, tc := range append(append([]canonCase{}, observedCases...), edgeCases...) {
		if len(tc.in) <= 4096 {
			f.Add([]byte(tc.in))
		}
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "audit-context.json")); err == nil {
		f.Add(b)
	}
	var c jsonb.Canonicalizer
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := jsonb.Canonical(in)
		valid := json.Valid(in)
		if err != nil {
			var je *jsonb.Error
			if errors.Is(err, jsonb.ErrTooLarge) {
				return
			}
			if !errors.As(err, &je) || je.Offset < 0 || je.Offset > len(in) {
				t.Fatalf("Canonical(%.200q): error %v is not a *jsonb.Error with an offset inside the input", in, err)
			}
			if valid && errors.Is(err, jsonb.ErrSyntax) {
				t.Fatalf("encoding/json accepts %.200q, Canonical reports a syntax error: %v", in, err)
			}
			if out != nil {
				t.Fatalf("Canonical(%.200q) returned %.200q with error %v", in, out, err)
			}
			return
		}
		if !valid {
			t.Fatalf("encoding/json rejects %.200q, Canonical accepted it as %.200q", in, out)
		}
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("Canonical(%.200q) = %.200q is not valid UTF-8 JSON", in, out)
		}
		again, err := jsonb.Canonical(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: Canonical(%.200q) = %.200q, then %.200q, %v", in, out, again, err)
		}
		reused, err := c.AppendCanonical([]byte("x"), in)
		if err != nil || !bytes.Equal(reused[1:], out) || reused[0] != 'x' {
			t.Fatalf("Canonicalizer.AppendCanonical(%.200q) = %.200q, %v; Canonical = %.200q", in, reused, err, out)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := checkKeyOrder(dec); err != nil {
			t.Fatalf("Canonical(%.200q) = %.200q: %v", in, out, err)
		}
		want, got := decodeUseNumber(t, in), decodeUseNumber(t, out)
		if err := sameJSON(want, got, "$"); err != nil {
			t.Fatalf("Canonical(%.200q) = %.200q changes the value: %v", in, out, err)
		}
	})
}

func decodeUseNumber(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot decode %.200q: %v", b, err)
	}
	return v
}

// sameJSON compares values decoded by encoding/json (which keeps the last of duplicate keys,
// as jsonb does). Numbers must be numerically equal and the output must have the scale
// PostgreSQL gives the input: max(0, fractional digits - exponent).
func sameJSON(in, out any, path string) error {
	switch a := in.(type) {
	case map[string]any:
		b, ok := out.(map[string]any)
		if !ok || len(a) != len(b) {
			return fmt.Errorf("%s: object %v became %v", path, a, out)
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok {
				return fmt.Errorf("%s: key %.200q lost", path, k)
			}
			if err := sameJSON(va, vb, path+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		b, ok := out.([]any)
		if !ok || len(a) != len(b) {
			return fmt.Errorf("%s: array %v became %v", path, a, out)
		}
		for i := range a {
			if err := sameJSON(a[i], b[i], path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		return nil
	case json.Number:
		b, ok := out.(json.Number)
		if !ok {
			return fmt.Errorf("%s: number %v became %v", path, a, out)
		}
		na, nb := refDecimal(string(a)), refDecimal(string(b))
		if strings.ContainsAny(string(b), "eE+") || na.value != nb.value || na.scale != nb.scale {
			return fmt.Errorf("%s: number %s (value %s, scale %d) became %s (value %s, scale %d)", path, a, na.value, na.scale, b, nb.value, nb.scale)
		}
		return nil
	default:
		if in != out {
			return fmt.Errorf("%s: %#v became %#v", path, in, out)
		}
		return nil
	}
}

type decimal struct {
	value string // "-123e-5" style: sign, significant digits, exponent; "0" for zero
	scale int
}

// refDecimal is a deliberately simple reference for a JSON number's value and PostgreSQL
// display scale, independent of the package's implementation.
func refDecimal(s string) decimal {
	mant, expText, _ := strings.Cut(strings.ToLower(s), "e")
	exp := 0
	if expText != "" {
		var err error
		if exp, err = strconv.Atoi(expText); err != nil {
			panic(err)
		}
	}
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	intPart, frac, _ := strings.Cut(mant, ".")
	scale := max(0, len(frac)-exp)
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= len(frac)
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		exp++
	}
	if digits == "" {
		return decimal{value: "0", scale: scale}
	}
	sign := ""
	if neg {
		sign = "-"
	}
	return decimal{value: sign + digits + "e" + strconv.Itoa(exp), scale: scale}
}

// checkKeyOrder verifies that every object's keys are unique and in jsonb order.
func checkKeyOrder(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	var prev *string
	for dec.More() {
		if d == '{' {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			k := tok.(string)
			if prev != nil && (len(*prev) > len(k) || (len(*prev) == len(k) && *prev >= k)) {
				return fmt.Errorf("key %.200q follows %.200q", k, *prev)
			}
			prev = &k
		}
		if err := checkKeyOrder(dec); err != nil {
			return err
		}
	}
	_, err = dec.Token() // closing delimiter
	return err
}
