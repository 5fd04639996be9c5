package chain

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON form of e to dst with Context and Metadata written verbatim —
// exactly the canonical bytes that were hashed — and the timestamp as RFC 3339 in UTC with
// trailing zeros trimmed, like Flowker's own output (the same microsecond instant the hash input
// renders with six digits), so anyone can recompute the hash from the output alone. HTTP responses must use it: encoding/json compacts raw messages (and the output
// of any Marshaler) and escapes <, > and &, which would change those bytes.
func (e *Event) AppendJSON(dst []byte) []byte {
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

// appendRawObject writes stored canonical JSON verbatim ({} when empty). A stored value that is
// not valid JSON (a damaged store) is written as a JSON string holding its text, so the output
// stays valid JSON and the damage stays visible (its hash will not verify).
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

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string escaped exactly like encoding/json (and so like
// Flowker's own responses): HTML-safe (<, > and & as \u003c...), U+2028 and U+2029 escaped,
// invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
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
