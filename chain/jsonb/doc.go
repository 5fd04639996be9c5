// Package jsonb renders JSON text exactly as PostgreSQL prints it after a round trip through
// jsonb (`'…'::jsonb::text`). The audit hash chain covers the context and metadata objects in
// this form, so that our hashes are byte-compatible with the ones Flowker's PostgreSQL trigger
// computes (flowker-contract.md §5.2-§5.4).
//
// The rendering was checked against PostgreSQL 15.18 (server encoding UTF8): the 300 vectors
// in testdata/jsonb-canonical-vectors.json, the §5.4 table, and testdata/pg15-observed.json,
// which holds PostgreSQL's answers (output or SQLSTATE) for every edge case in the tests plus
// random documents and mutations of them. TestPostgresLive repeats the comparison against a
// live server when FLOWKER_AUDIT_TEST_PSQL names one.
//
// # Rendering
//
//   - Objects: duplicate keys keep their last occurrence, at every level. Keys are sorted by
//     the length in bytes of their UTF-8 text (after escapes are decoded), then bytewise, and
//     written as {"k": v, "k2": v2}; an empty object is {}.
//   - Arrays keep their order: [a, b]; an empty array is [].
//   - Strings: escapes in the input are decoded (\/, \uXXXX, surrogate pairs). The output
//     escapes only `"` and `\` (as \" and \\), U+0008, U+0009, U+000A, U+000C and U+000D
//     (as \b, \t, \n, \f, \r) and the other characters U+0000-U+001F (as \u00xx, lower-case
//     hex). Everything else is written as raw UTF-8, including DEL, U+2028, U+2029, emoji and
//     <>&'/.
//   - Numbers are PostgreSQL numeric values, written in plain decimal, never with an
//     exponent, with their exact digits (they never pass through float64). The scale written
//     is kept (1.50 stays 1.50); an exponent is applied and the scale becomes
//     max(0, fractional digits - exponent): 1e3 is 1000, 1.50e1 is 15.0, 100e-2 is 1.00, 1e-7
//     is 0.0000001. Zero loses its sign: -0 is 0, -0.0 is 0.0, 0e10 is 0.
//   - true, false and null as themselves. Whitespace between tokens (space, tab, CR, LF) is
//     dropped. A scalar at the top level is allowed ("x", 42).
//
// # Rejected input
//
// Input is rejected where PostgreSQL rejects it, with an error that wraps one of the sentinel
// errors below and, except for ErrTooLarge, is an *Error carrying the byte offset of the
// problem:
//
//   - ErrInvalidUTF8 (PostgreSQL: SQLSTATE 22021): bytes that are not valid UTF-8, including
//     overlong forms, UTF-8-encoded surrogates and code points above U+10FFFF. Checked before
//     anything else, as PostgreSQL checks the encoding of text input before parsing it.
//   - ErrSyntax (22P02): anything that is not JSON text (RFC 8259): empty input, trailing
//     data after the value, unterminated strings, unescaped characters U+0000-U+001F inside
//     strings (a raw NUL byte is rejected wherever it occurs), escapes other than \" \\ \/ \b
//     \f \n \r \t and \u followed by four hex digits, numbers with leading zeros (01), a
//     plus sign (+1), a bare or trailing decimal point (.5, 1.), an empty exponent (1e),
//     NaN and Infinity, true/false/null in any other spelling, comments, trailing commas,
//     single quotes, a byte order mark, and whitespace other than space, tab, CR and LF.
//   - ErrUnsupportedEscape (22P05): the escape \u0000, because PostgreSQL's text type cannot
//     hold U+0000.
//   - ErrLoneSurrogate (22P02): a \uXXXX escape of a UTF-16 surrogate that is not a high
//     surrogate immediately followed by a \uXXXX low surrogate.
//   - ErrNumberOverflow (22003, value overflows numeric format): a number that numeric cannot
//     store: more than 131072 digits before the decimal point, a scale (digits after it,
//     as computed above) over 16383, or an exponent of magnitude 1073741823 or more. These
//     bounds keep inputs such as 1e999999999 from allocating anything. (PostgreSQL 16 accepts
//     an exponent of exactly 1073741823 when the value is zero; this package follows 15.)
//   - ErrTooDeep: arrays and objects nested more than MaxDepth (10000) deep. PostgreSQL's own
//     limit is its stack depth; 15.18 with the default max_stack_depth of 2MB was measured to
//     accept 12000 levels, so everything accepted here is accepted there.
//   - ErrTooLarge: input or rendering longer than MaxLen (1 GiB - 1), the largest PostgreSQL
//     text value. The rendering's exact size is known before it is written, so a small input
//     that would expand past the limit (numbers can grow about 16000-fold) fails without
//     allocating it. PostgreSQL's smaller internal jsonb size limits (about 256 MiB) are not
//     modelled.
//
// When an input has several problems, the error reported is PostgreSQL's choice: invalid
// UTF-8 first, then the first problem in document order, where, as in PostgreSQL's parser,
// which reads one token ahead, a token that is itself malformed is reported in preference to
// the structural error it causes (`{"a" "\u0000"}` fails with ErrUnsupportedEscape) and to
// the overflow of a number just before it (`[1e999999 .]` is a syntax error).
//
// # Hashing
//
// The chain hashes the UTF-8 bytes of this rendering. Flowker's trigger instead hashes
// `text::bytea` of its input, which applies PostgreSQL's bytea escape decoding (`\\` becomes
// `\`, and any other backslash sequence makes the insert fail); that difference is handled
// in package chain, not here.
//
// # Performance
//
// Canonical and AppendCanonical parse in a single pass into a flat slice of nodes, sort each
// object's keys once, and write the output into a buffer sized exactly in advance. They
// allocate scratch space on each call; a Canonicalizer kept by the caller reuses it, so that
// rendering into a reused buffer does not allocate.
package jsonb
