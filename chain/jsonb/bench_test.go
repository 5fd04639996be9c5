package jsonb_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// benchInputs returns the audit context fixture as the proxy would produce it (compact,
// json.Marshal style) and as written in testdata (indented).
func benchInputs(b *testing.B) map[string][]byte {
	b.Helper()
	pretty, err := os.ReadFile(filepath.Join("testdata", "audit-context.json"))
	if err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, pretty); err != nil {
		b.Fatal(err)
	}
	return map[string][]byte{"audit-context": compact.Bytes(), "audit-context-indented": pretty}
}

func BenchmarkCanonical(b *testing.B) {
	for name, in := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jsonb.Canonical(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCanonicalizer is the steady state of a caller that keeps a Canonicalizer and an
// output buffer.
func BenchmarkCanonicalizer(b *testing.B) {
	for name, in := range benchInputs(b) {
		b.Run(name, func(b *testing.B) {
			var c jsonb.Canonicalizer
			var buf []byte
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = c.AppendCanonical(buf[:0], in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVectors renders all 300 PostgreSQL vectors per iteration.
func BenchmarkVectors(b *testing.B) {
	var ins [][]byte
	var n int64
	for _, v := range loadVectors(b).Vectors {
		ins = append(ins, []byte(v.Input))
		n += int64(len(v.Input))
	}
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		for _, in := range ins {
			if _, err := jsonb.Canonical(in); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "Checks the customer's identity, then scores the payment.\nOwner: \"risk-team\" é 😀"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		buf = jsonb.AppendString(buf[:0], s)
	}
}
