package auditapi

import (
	"strconv"

	"github.com/flowker-audit/flowker-audit/chain"
)

// appendEvent appends the JSON of e (see chain.Event.AppendJSON: context and metadata byte for
// byte as hashed, so anyone can recompute the hash from this output).
func appendEvent(dst []byte, e *chain.Event) []byte { return e.AppendJSON(dst) }

// appendString appends s as a JSON string (the cursor is URL-safe base64: nothing to escape).
func appendString(dst []byte, s string) []byte { return strconv.AppendQuote(dst, s) }
