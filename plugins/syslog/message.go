package syslog

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Severities (RFC 5424 section 6.2.1).
const (
	severityWarning = 4 // a FAILED attempt
	severityNotice  = 5 // a SUCCESS
)

// formatter renders events as RFC 5424 messages.
type formatter struct {
	facility int
	hostname string
	appName  string
	procID   string
	sdID     string
}

// appendMessage appends the RFC 5424 message for e (without framing) to dst:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID eventId="…" …] EVENT-JSON
//
// PRI is facility*8 + severity (notice for SUCCESS, warning otherwise); TIMESTAMP is the
// event's own time (UTC, microseconds); MSGID is the event type; the structured data carries the
// fields SIEM parsers key on; MSG is the event's JSON exactly as the audit API returns it
// (chain.Event.AppendJSON), without a BOM, so every hash can be recomputed downstream.
func (f *formatter) appendMessage(dst []byte, e *chain.Event) []byte {
	sev := severityWarning
	if e.Result == chain.ResultSuccess {
		sev = severityNotice
	}
	dst = f.appendHeader(dst, sev, e.Timestamp, e.EventType)
	for _, p := range [...]struct{ name, value string }{
		{"eventId", e.EventID},
		{"eventType", e.EventType},
		{"action", e.Action},
		{"result", e.Result},
		{"actorType", e.Actor.Type},
		{"actorId", e.Actor.ID},
		{"actorIp", e.Actor.IPAddress},
		{"resourceType", e.ResourceType},
		{"resourceId", e.ResourceID},
		{"chainId", e.ChainID},
	} {
		if p.value == "" {
			continue
		}
		dst = appendParam(dst, p.name, p.value)
	}
	dst = append(dst, ` sequence="`...)
	dst = strconv.AppendUint(dst, e.Sequence, 10)
	dst = append(dst, '"')
	dst = appendParam(dst, "hash", e.Hash)
	dst = append(dst, "] "...)
	return e.AppendJSON(dst)
}

// appendHeader appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID" (the
// structured-data element left open for its parameters).
func (f *formatter) appendHeader(dst []byte, sev int, ts time.Time, msgID string) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(f.facility*8+sev), 10)
	dst = append(dst, ">1 "...)
	dst = ts.UTC().AppendFormat(dst, chain.TimestampLayout)
	dst = append(dst, ' ')
	dst = append(dst, f.hostname...)
	dst = append(dst, ' ')
	dst = append(dst, f.appName...)
	dst = append(dst, ' ')
	dst = append(dst, f.procID...)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, msgID, 32)
	dst = append(dst, " ["...)
	return append(dst, f.sdID...)
}

// CheckpointMsgID is the MSGID of a forwarded signed checkpoint (event types are other words).
const CheckpointMsgID = "AUDIT_CHECKPOINT"

// appendCheckpoint appends the RFC 5424 message of a signed checkpoint (without framing):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID AUDIT_CHECKPOINT [SD-ID chainId="…" sequence="…"
//	hash="…" keyId="…" signature="…"] CHECKPOINT-JSON
//
// PRI is facility*8 + notice; TIMESTAMP the checkpoint's time; MSG the checkpoint as one line
// of the sidecar's checkpoint log (forward.CheckpointLine), which verifies with the public key.
func (f *formatter) appendCheckpoint(dst []byte, c *sink.Checkpoint, line []byte) []byte {
	dst = f.appendHeader(dst, severityNotice, c.Time, CheckpointMsgID)
	dst = appendParam(dst, "chainId", c.ChainID)
	dst = append(dst, ` sequence="`...)
	dst = strconv.AppendUint(dst, c.Sequence, 10)
	dst = append(dst, '"')
	dst = appendParam(dst, "hash", c.Hash)
	dst = appendParam(dst, "keyId", c.KeyID)
	dst = appendParam(dst, "signature", c.Signature)
	dst = append(dst, "] "...)
	return append(dst, line...)
}

// appendHeaderField appends s as a header field of at most max printable ASCII characters, or
// "-" (the NILVALUE) when s is empty or not such a string.
func appendHeaderField(dst []byte, s string, max int) []byte {
	if !printable(s, max) {
		return append(dst, '-')
	}
	return append(dst, s...)
}

// appendParam appends ` name="value"` with '"', '\' and ']' escaped (RFC 5424 section 6.3.3).
// Invalid UTF-8 (never produced by the sidecar) becomes U+FFFD, as PARAM-VALUE must be UTF-8.
func appendParam(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	for i := 0; i < len(value); {
		c := value[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c == ']' {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(value[i:])
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, value[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// appendFrame appends msg with RFC 6587 octet-counting framing: "LEN SP MSG".
func appendFrame(dst []byte, f *formatter, e *chain.Event, scratch []byte) ([]byte, []byte) {
	scratch = f.appendMessage(scratch[:0], e)
	return appendFramed(dst, scratch), scratch
}

// appendFramed appends msg with RFC 6587 octet-counting framing: "LEN SP MSG".
func appendFramed(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}
