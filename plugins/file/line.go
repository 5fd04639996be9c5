package file

import (
	"encoding/json"
	"fmt"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// appendLine appends e as one NDJSON line (ending in '\n') to dst.
//
// The object has chain.Event's JSON field names and order, so it decodes back into a
// chain.Event, and it keeps every byte that was hashed: context and metadata are written as the
// exact canonical text (encoding/json would compact it and escape <, > and &), and the
// timestamp in RFC 3339 UTC with its microseconds (trailing zeros trimmed), which is the instant
// the canonical input renders with six fractional digits. Anyone can therefore recompute each
// hash from the file alone. Empty context or metadata is written as {}, which is
// what the hash used.
//
// It fails (permanently: the same event can never be written) when context or metadata is not
// a single line of valid JSON without surrounding white space, which canonical jsonb text
// always is: such an event could not be kept byte for byte.
func appendLine(dst []byte, e *chain.Event) ([]byte, error) {
	for _, f := range [...]struct {
		name string
		v    []byte
	}{{"context", e.Context}, {"metadata", e.Metadata}} {
		if len(f.v) == 0 {
			continue
		}
		if !json.Valid(f.v) {
			return dst, sink.Permanentf("event %s (chain %s, sequence %d): %s is not valid JSON", e.EventID, e.ChainID, e.Sequence, f.name)
		}
		// A JSON decoder drops surrounding white space, and the hash covers it.
		if isSpace(f.v[0]) || isSpace(f.v[len(f.v)-1]) {
			return dst, sink.Permanentf("event %s (chain %s, sequence %d): %s has surrounding white space", e.EventID, e.ChainID, e.Sequence, f.name)
		}
		for _, c := range f.v {
			if c == '\n' || c == '\r' {
				return dst, sink.Permanentf("event %s (chain %s, sequence %d): %s spans several lines", e.EventID, e.ChainID, e.Sequence, f.name)
			}
		}
	}
	dst = e.AppendJSON(dst)
	return append(dst, '\n'), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lineHead is the part of a line that recovery needs.
type lineHead struct {
	ChainID  string `json:"chainId"`
	Sequence uint64 `json:"sequence"`
	Hash     string `json:"hash"`
}

func parseLineHead(line []byte) (lineHead, error) {
	var h lineHead
	if err := json.Unmarshal(line, &h); err != nil {
		return h, err
	}
	if h.ChainID == "" || h.Sequence == 0 {
		return h, fmt.Errorf("line has no chainId or sequence")
	}
	return h, nil
}
