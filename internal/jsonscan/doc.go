// Package jsonscan is flowker-audit's one JSON tokenizer: whitespace, string, number and
// literal tokens scanned over a byte slice, with no allocation and no decoding. Its two users
// build different things on it:
//
//   - proxy/capture renders captured bodies with secrets redacted and looks values up in them
//     (strict RFC 8259 grammar; a prefix of a body may end anywhere, so "the input ended" is
//     told apart from "the input is wrong");
//   - chain/jsonb canonicalises JSON as PostgreSQL's jsonb does (PostgreSQL's lexer: the same
//     grammar, but a lone surrogate or \u0000 escape is an error, reported at the place and in
//     the order PostgreSQL reports it).
//
// So a scanner reports what it found rather than deciding: a string's first hard problem (the
// token is not a JSON string) ends the scan; its first soft problem (a lone UTF-16 surrogate or
// \u0000 escape: valid JSON that PostgreSQL refuses and that capture re-encodes) is recorded in
// the order PostgreSQL would meet it and the scan goes on.
package jsonscan

// IsSpace reports JSON whitespace: space, tab, line feed, carriage return.
func IsSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// SkipSpace returns the position of the first non-whitespace byte of src at or after i.
func SkipSpace(src []byte, i int) int {
	for i < len(src) && IsSpace(src[i]) {
		i++
	}
	return i
}
