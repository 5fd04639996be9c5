package auditapi

import (
	"strconv"

	"github.com/flowker-audit/flowker-audit/chain"
)

// appendEvent appends the JSON of e (see chain.Event.AppendJSON: context and metadata byte for
// byte as hashed, so anyone can recompute the hash from this output).
// An event the store holds as several conflicting rows at its sequence (the one that links is
// served) carries one more property, "conflictingDuplicate": true.
func appendEvent(dst []byte, e *chain.Event) []byte {
	dst = e.AppendJSON(dst)
	if e.ConflictingDuplicate && len(dst) > 0 && dst[len(dst)-1] == '}' {
		dst = append(dst[:len(dst)-1], `,"conflictingDuplicate":true}`...)
	}
	return dst
}

// appendString appends s as a JSON string (the cursor is URL-safe base64: nothing to escape).
func appendString(dst []byte, s string) []byte { return strconv.AppendQuote(dst, s) }
