package chain

import (
	"strings"
	"unicode/utf8"
)

// CleanText returns s as the text fields of an event must be: valid UTF-8, with invalid bytes
// and NUL replaced by U+FFFD (PostgreSQL text cannot hold either, and the event's JSON would
// show U+FFFD, so a hash over the raw bytes could not be recomputed from what the API returns),
// and at most max bytes (max <= 0: no limit), cut on a character boundary.
func CleanText(s string, max int) string {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	if max > 0 && len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}
