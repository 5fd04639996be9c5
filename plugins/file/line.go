package file

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// appendLine appends e as one NDJSON line (ending in '\n') to dst.
//
// The object has chain.Event's JSON field names and order, so it decodes back into a
// chain.Event, and it keeps every byte that was hashed: context and metadata are written as the
// exact canonical text (encoding/json would compact it and escape <, > and &), and the
// timestamp in the canonical input's form (six fractional digits, Z). Anyone can therefore
// recompute each hash from the file alone. Empty context or metadata is written as {}, which is
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
	dst = appendRaw(dst, e.Context)
	dst = append(dst, `,"metadata":`...)
	dst = appendRaw(dst, e.Metadata)
	dst = append(dst, `,"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, chain.TimestampLayout)
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
	return append(dst, "}\n"...), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func appendRaw(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "{}"...)
	}
	return append(dst, v...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping like encoding/json except that <, > and &
// are kept as they are. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

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
