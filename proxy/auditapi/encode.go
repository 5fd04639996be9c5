package auditapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// appendEvent appends the JSON of e in Flowker's AuditEntryOutput key order, plus chainId and
// sequence. context and metadata are written byte for byte as stored (the canonical jsonb text
// that was hashed) so that anyone can recompute the hash from this output; encoding/json would
// compact them (it reformats every json.RawMessage and Marshaler result), so the event is
// assembled by hand. An empty context or metadata is written as {}, the value that was hashed.
// A stored value that is not valid JSON (a corrupt store) is written as a JSON string holding
// its text, so the answer stays valid JSON and the damage stays visible.
func appendEvent(dst []byte, e *chain.Event) []byte {
	dst = append(dst, `{"eventId":`...)
	dst = appendString(dst, e.EventID)
	dst = append(dst, `,"eventType":`...)
	dst = appendString(dst, e.EventType)
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, e.Action)
	dst = append(dst, `,"result":`...)
	dst = appendString(dst, e.Result)
	dst = append(dst, `,"resourceId":`...)
	dst = appendString(dst, e.ResourceID)
	dst = append(dst, `,"resourceType":`...)
	dst = appendString(dst, e.ResourceType)
	dst = append(dst, `,"actor":{"type":`...)
	dst = appendString(dst, e.Actor.Type)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.Actor.ID)
	dst = append(dst, `,"ipAddress":`...)
	dst = appendString(dst, e.Actor.IPAddress)
	dst = append(dst, `},"context":`...)
	dst = appendRawObject(dst, e.Context)
	dst = append(dst, `,"metadata":`...)
	dst = appendRawObject(dst, e.Metadata)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","hash":`...)
	dst = appendString(dst, e.Hash)
	if e.PreviousHash != "" {
		dst = append(dst, `,"previousHash":`...)
		dst = appendString(dst, e.PreviousHash)
	}
	dst = append(dst, `,"chainId":`...)
	dst = appendString(dst, e.ChainID)
	dst = append(dst, `,"sequence":`...)
	dst = strconv.AppendUint(dst, e.Sequence, 10)
	return append(dst, '}')
}

func appendRawObject(dst, raw []byte) []byte {
	switch {
	case len(raw) == 0:
		return append(dst, "{}"...)
	case json.Valid(raw):
		return append(dst, raw...)
	default:
		return appendString(dst, string(raw))
	}
}

// appendString appends s as a JSON string, escaped like encoding/json (HTML-safe, as Flowker).
func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes (invalid UTF-8 becomes U+FFFD)
	return append(dst, b...)
}
