package sinktest

import (
	"fmt"
	"sort"
)

// A tiny value model rendered exactly as PostgreSQL renders jsonb::text (flowker-contract §5.4):
// object keys ordered by byte length then bytewise, ", " and ": " separators, strings escaped
// with the jsonb rules, numbers kept as written. It exists so that generated events carry
// canonical context and metadata without depending on the production canonicalizer.

// obj is a JSON object.
type obj map[string]any

// arr is a JSON array.
type arr []any

// num is a JSON number, kept as its written text.
type num string

// jsonbKeyLess orders object keys like jsonb: shorter first, then bytewise.
func jsonbKeyLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// appendJSONB appends the canonical jsonb text of v to dst. It panics on a type it does not
// model, which is a bug in the generator.
func appendJSONB(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case num:
		return append(dst, v...)
	case int:
		return fmt.Appendf(dst, "%d", v)
	case string:
		return appendJSONBString(dst, v)
	case arr:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONB(dst, e)
		}
		return append(dst, ']')
	case obj:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return jsonbKeyLess(keys[i], keys[j]) })
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONBString(dst, k)
			dst = append(dst, ": "...)
			dst = appendJSONB(dst, v[k])
		}
		return append(dst, '}')
	default:
		panic(fmt.Sprintf("sinktest: unsupported JSON value %T", v))
	}
}

const lowerHex = "0123456789abcdef"

func appendJSONBString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// canonical renders v as canonical jsonb text.
func canonical(v any) []byte { return appendJSONB(make([]byte, 0, 1024), v) }
