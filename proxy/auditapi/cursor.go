package auditapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flowker-audit/flowker-audit/sink"
)

// Cursor wire format, version 1 (all integers big-endian), then URL-safe base64 without padding:
//
//	[0]      version (1)
//	[1]      sort order (0 DESC, 1 ASC)
//	[2:18]   first 16 bytes of SHA-256 of the normalised filters (filterDigest)
//	[18:26]  position: timestamp, Unix microseconds (int64)
//	[26:34]  position: sequence (uint64)
//	[34:..]  position: chainId, uvarint length then bytes
//	[..:+32] HMAC-SHA256 under the cursor key of "flowker-audit cursor\x00" and everything above
//
// The MAC makes the cursor opaque to clients: a flipped byte, a truncation or a cursor from an
// instance with another key is rejected, so a client can neither forge a position nor lift the
// binding to the filters and sort order.
const (
	cursorVersion   = 1
	cursorMACSize   = sha256.Size
	cursorHeadSize  = 34
	maxCursorChain  = 1024
	cursorMACDomain = "flowker-audit cursor\x00"
	// MinCursorKeyLen is the shortest accepted Options.CursorKey.
	MinCursorKeyLen = 16
)

// Cursor decoding errors; each becomes 400 FLK-0610 with its own message.
var (
	errCursorEncoding = errors.New("invalid cursor: not URL-safe base64")
	errCursorShort    = errors.New("invalid cursor: too short (truncated?)")
	errCursorVersion  = errors.New("invalid cursor: unsupported cursor version")
	errCursorMAC      = errors.New("invalid cursor: integrity check failed (the cursor was altered, truncated or issued by another instance)")
	errCursorLayout   = errors.New("invalid cursor: malformed payload")
)

type filterDigest [16]byte

// cursorState is what a cursor carries.
type cursorState struct {
	Pos    sink.Position
	Order  sink.Order
	Filter filterDigest
}

// cursorCodec encodes and authenticates cursors under one key.
type cursorCodec struct{ key []byte }

func (c cursorCodec) mac(body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(cursorMACDomain))
	m.Write(body)
	return m.Sum(nil)
}

// encode returns the cursor string for s.
func (c cursorCodec) encode(s cursorState) (string, error) {
	if len(s.Pos.ChainID) > maxCursorChain {
		return "", fmt.Errorf("encode cursor: chain id of %d bytes exceeds %d", len(s.Pos.ChainID), maxCursorChain)
	}
	b := make([]byte, 0, cursorHeadSize+binary.MaxVarintLen64+len(s.Pos.ChainID)+cursorMACSize)
	b = append(b, cursorVersion, byte(s.Order))
	b = append(b, s.Filter[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Pos.TimeMicros))
	b = binary.BigEndian.AppendUint64(b, s.Pos.Sequence)
	b = binary.AppendUvarint(b, uint64(len(s.Pos.ChainID)))
	b = append(b, s.Pos.ChainID...)
	b = append(b, c.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decode parses and authenticates a cursor string. Every failure is one of the errCursor* errors.
func (c cursorCodec) decode(str string) (cursorState, error) {
	var s cursorState
	if len(str) > 4*(cursorHeadSize+binary.MaxVarintLen64+maxCursorChain+cursorMACSize)/3+4 {
		return s, errCursorLayout
	}
	for i := 0; i < len(str); i++ {
		if !isBase64URL(str[i]) {
			return s, errCursorEncoding
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(str)
	if err != nil {
		return s, errCursorEncoding
	}
	if len(b) > 0 && b[0] != cursorVersion {
		return s, fmt.Errorf("%w %d", errCursorVersion, b[0])
	}
	if len(b) < cursorHeadSize+1+cursorMACSize {
		return s, errCursorShort
	}
	body, tag := b[:len(b)-cursorMACSize], b[len(b)-cursorMACSize:]
	if !hmac.Equal(tag, c.mac(body)) {
		return s, errCursorMAC
	}
	// Authenticated from here on: a layout error is a bug in an older encoder, still rejected.
	order := sink.Order(body[1])
	if order != sink.Asc && order != sink.Desc {
		return s, errCursorLayout
	}
	copy(s.Filter[:], body[2:18])
	s.Pos.TimeMicros = int64(binary.BigEndian.Uint64(body[18:26]))
	s.Pos.Sequence = binary.BigEndian.Uint64(body[26:34])
	n, k := binary.Uvarint(body[cursorHeadSize:])
	if k <= 0 || n > maxCursorChain || uint64(len(body)-cursorHeadSize-k) != n {
		return s, errCursorLayout
	}
	s.Pos.ChainID = string(body[cursorHeadSize+k:])
	s.Order = order
	return s, nil
}

// digestFilter hashes the normalised filter, so a cursor can only continue the search it came from.
func digestFilter(f sink.Filter) filterDigest {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00%s\x00%s\x00", f.EventType, f.Action, f.Result, f.ResourceType, f.ResourceID)
	if f.From.IsZero() {
		h.Write([]byte("-\x00"))
	} else {
		fmt.Fprintf(h, "%d\x00", f.From.UnixMicro())
	}
	if f.To.IsZero() {
		h.Write([]byte("-\x00"))
	} else {
		fmt.Fprintf(h, "%d\x00", f.To.UnixMicro())
	}
	// Actor filters came later: a digest without them is unchanged, so cursors issued before
	// they existed stay valid.
	if f.ActorType != "" || f.ActorID != "" {
		fmt.Fprintf(h, "actor\x00%s\x00%s\x00", f.ActorType, f.ActorID)
	}
	var d filterDigest
	copy(d[:], h.Sum(nil))
	return d
}

func isBase64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// CursorAt returns the cursor that a page of the unfiltered search in order carries when its last
// event is at pos: a search with it continues after pos. Clients get cursors from pages; this is
// for tools that start at a known position (the cluster benchmark's deep cursor).
func (a *API) CursorAt(pos sink.Position, order sink.Order) (string, error) {
	return a.codec.encode(cursorState{Pos: pos, Order: order, Filter: digestFilter(sink.Filter{})})
}
