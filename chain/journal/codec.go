package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unsafe"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Record format (version 1), the value stored under an 8-byte big-endian sequence key:
//
//	byte     version (1)
//	uvarint  sequence (must equal the key)
//	varint   timestamp, Unix microseconds
//	14 × (uvarint length, bytes): eventId, eventType, action, result, resourceId, resourceType,
//	         actorType, actorId, actorIp, context, metadata, hash, previousHash, chainId
//	uint32   CRC-32C (Castagnoli) of everything before it, big-endian
//
// The checksum catches bit rot and torn or foreign bytes; bbolt's own transactions make a torn
// record after a crash impossible, so a bad checksum always means damage to be cut and reported.
const recordVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports a record that fails its checksum or does not decode.
var ErrCorrupt = errors.New("corrupt journal record")

func appendRecord(dst []byte, e *chain.Event) []byte {
	if dst == nil {
		n := 1 + 2*binary.MaxVarintLen64 + 4 + 14*binary.MaxVarintLen32 + len(e.EventID) + len(e.EventType) + len(e.Action) +
			len(e.Result) + len(e.ResourceID) + len(e.ResourceType) + len(e.Actor.Type) + len(e.Actor.ID) +
			len(e.Actor.IPAddress) + len(e.Context) + len(e.Metadata) + len(e.Hash) + len(e.PreviousHash) + len(e.ChainID)
		dst = make([]byte, 0, n)
	}
	start := len(dst)
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, e.Sequence)
	dst = binary.AppendVarint(dst, e.Timestamp.UnixMicro())
	for _, f := range [...]string{e.EventID, e.EventType, e.Action, e.Result, e.ResourceID, e.ResourceType,
		e.Actor.Type, e.Actor.ID, e.Actor.IPAddress} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	for _, f := range [...][]byte{e.Context, e.Metadata} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	for _, f := range [...]string{e.Hash, e.PreviousHash, e.ChainID} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad length", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad integer", ErrCorrupt)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: field overruns record", ErrCorrupt)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// decodeRecord decodes a record; the returned event does not alias b.
func decodeRecord(b []byte) (chain.Event, error) {
	var e chain.Event
	if len(b) < 5 {
		return e, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return e, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[0] != recordVersion {
		return e, fmt.Errorf("%w: unknown record version %d", ErrCorrupt, body[0])
	}
	// One allocation for every field: the strings are views of this private copy (unsafe.String),
	// which nothing writes to after the copy; Context and Metadata are slices of it.
	owned := make([]byte, len(body)-1)
	copy(owned, body[1:])
	r := &reader{b: owned}
	e.Sequence = r.uvarint()
	e.Timestamp = time.UnixMicro(r.varint()).UTC()
	str := func() string {
		b := r.bytes()
		if len(b) == 0 {
			return ""
		}
		return unsafe.String(&b[0], len(b))
	}
	e.EventID, e.EventType, e.Action, e.Result = str(), str(), str(), str()
	e.ResourceID, e.ResourceType = str(), str()
	e.Actor.Type, e.Actor.ID, e.Actor.IPAddress = str(), str(), str()
	e.Context, e.Metadata = r.bytes(), r.bytes()
	e.Hash, e.PreviousHash, e.ChainID = str(), str(), str()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err != nil {
		return chain.Event{}, r.err
	}
	return e, nil
}

// recordTimestamp reads only the timestamp of a record (for lag ages) without checking it.
func recordTimestamp(b []byte) (time.Time, bool) {
	if len(b) < 2 || b[0] != recordVersion {
		return time.Time{}, false
	}
	_, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return time.Time{}, false
	}
	ts, m := binary.Varint(b[1+n:])
	if m <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(ts).UTC(), true
}
