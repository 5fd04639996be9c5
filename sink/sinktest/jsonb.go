package sinktest

import (
	"encoding/json"
	"fmt"

	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// A tiny value model for generated context and metadata, rendered as canonical jsonb text by
// the production canonicalizer (chain/jsonb), so generated events hash exactly like real ones.

// obj is a JSON object.
type obj map[string]any

// arr is a JSON array.
type arr []any

// num is a JSON number, kept as its written text.
type num string

// MarshalJSON writes the number's text unchanged.
func (n num) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// canonical renders v as canonical jsonb text. It panics on a value that cannot be rendered,
// which is a bug in the generator.
func canonical(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sinktest: encoding generated JSON: %v", err))
	}
	out, err := jsonb.Canonical(raw)
	if err != nil {
		panic(fmt.Sprintf("sinktest: canonicalizing generated JSON: %v", err))
	}
	return out
}
