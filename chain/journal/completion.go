package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Completions: the event of an answered request, made safe against a crash of the process before
// the client gets its answer, and appended to bbolt after it.
//
// An intended request already has a durable intent (fdatasynced before forwarding). When its
// response is complete, Complete writes the event's draft to the completion log (completionlog.go:
// one write(2), no fdatasync), queues it for the writer and returns: the client waits for one
// durable write per request, its intent, instead of two. The writer appends the draft in a later
// group commit, resolving the intent in the same transaction.
//
// What survives what, when the sidecar dies between the answer and that commit:
//   - the process dies (SIGKILL, OOM kill, a panic): the kernel keeps what was written, so the
//     next start reads the completion back and appends the event as it was observed (recovery
//     outcome "observed");
//   - the machine dies (power, kernel): the completion may be lost with the page cache, the intent
//     is not (it was synced): recovery learns the outcome from Flowker ("reconciled" or
//     "unknown"), as for any intent without its event.

// Completion record format, the payload of a completion frame (completionlog.go):
//
//	byte     version (2; intents are version 1)
//	11 × (uvarint length, bytes): eventId, resolves, eventType, action, result, resourceId,
//	         resourceType, actorType, actorId, actorIp, unwatch
//	3 × (uvarint length, bytes): context, metadata, watch (JSON; empty: none)
const completionVersion = 2

// appendCompletion appends the record of d; d.Once must be empty (see Complete).
func appendCompletion(dst []byte, d *Draft) ([]byte, error) {
	var watch []byte
	if d.Watch != nil {
		var err error
		if watch, err = json.Marshal(d.Watch); err != nil {
			return nil, fmt.Errorf("encoding watch entry: %w", err)
		}
	}
	dst = append(dst, completionVersion)
	for _, f := range [...]string{d.EventID, d.Resolves, d.EventType, d.Action, d.Result, d.ResourceID, d.ResourceType,
		d.Actor.Type, d.Actor.ID, d.Actor.IPAddress, d.Unwatch} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	for _, f := range [...][]byte{d.Context, d.Metadata, watch} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst, nil
}

// decodeCompletion decodes a completion record; the draft does not alias b.
func decodeCompletion(b []byte) (Draft, error) {
	var d Draft
	if len(b) < 1 || b[0] != completionVersion {
		return d, fmt.Errorf("%w: not a completion record", ErrCorrupt)
	}
	r := &reader{b: append([]byte(nil), b[1:]...)}
	str := func() string { return string(r.bytes()) }
	d.EventID, d.Resolves, d.EventType, d.Action, d.Result = str(), str(), str(), str(), str()
	d.ResourceID, d.ResourceType = str(), str()
	d.Actor = chain.Actor{Type: str(), ID: str(), IPAddress: str()}
	d.Unwatch = str()
	d.Context, d.Metadata = r.bytes(), r.bytes()
	watch := r.bytes()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err == nil && len(watch) > 0 {
		d.Watch = new(Watch)
		if err := json.Unmarshal(watch, d.Watch); err != nil {
			r.err = fmt.Errorf("%w: watch entry: %v", ErrCorrupt, err)
		}
	}
	if r.err == nil && (d.EventID == "" || d.Resolves == "") {
		r.err = fmt.Errorf("%w: completion without an event id or an intent", ErrCorrupt)
	}
	if r.err != nil {
		return Draft{}, r.err
	}
	return d, nil
}

// ErrNotCompletable is returned by Complete for a draft that must be appended with Append.
var ErrNotCompletable = errors.New("the event cannot be completed in the background")

// Complete journals the event of an intended request without waiting for it to be durable: d is
// written to the completion log (one write, no sync: it survives a crash of the process, and the
// intent, which is durable, covers a crash of the machine), queued for the writer, and then is
// called with the appended event, or the error, once its group commit ends. then runs on the
// writer's goroutine and must return quickly.
//
// It queues nothing and returns an error (wrapping ErrNotCompletable, or the journal's own
// errors) when d cannot go this way: it carries a once-key (whether it is a duplicate is known
// only at the append, and the caller must know it), it resolves no pending intent, the journal is
// failing, full or closed, or the write failed. The caller then appends d with Append.
func (j *Journal) Complete(ctx context.Context, d Draft, then func(chain.Event, error)) error {
	switch {
	case d.Once != "":
		return fmt.Errorf("%w: it carries a once-key", ErrNotCompletable)
	case d.Resolves == "" || d.EventID == "" || !j.ilog.has(d.Resolves):
		return fmt.Errorf("%w: it resolves no pending intent", ErrNotCompletable)
	}
	if err := j.Accepting(); err != nil {
		return err
	}
	rec, err := appendCompletion(make([]byte, completionHeader, completionHeader+completionSize(&d)), &d)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotCompletable, err)
	}
	if err := j.clog.write(d.Resolves, sealCompletion(rec)); err != nil {
		return err
	}
	j.m.Completions.Inc()
	r := &request{kind: kindAppend, draft: &d, start: time.Now(), then: then}
	return j.submit(ctx, r)
}

// Flush returns once every append queued before it (Complete's included) has committed, or
// failed, and its then has returned.
func (j *Journal) Flush(ctx context.Context) error {
	return j.await(ctx, &request{kind: kindFlush, done: make(chan result, 1)})
}

// completionSize is about the size of d's record (watch aside).
func completionSize(d *Draft) int {
	return 64 + len(d.EventID) + len(d.Resolves) + len(d.EventType) + len(d.Action) + len(d.Result) + len(d.ResourceID) +
		len(d.ResourceType) + len(d.Actor.Type) + len(d.Actor.ID) + len(d.Actor.IPAddress) + len(d.Unwatch) +
		len(d.Context) + len(d.Metadata)
}

// Completion frames, appended one after the other to the completion log's files:
//
//	4 bytes  magic "\xffCMP"
//	uint32   payload length, big-endian
//	uint32   CRC-32C of the payload, big-endian
//	payload  the completion record
const completionHeader = 12

var completionMagic = [4]byte{0xff, 'C', 'M', 'P'}

// sealCompletion fills in the header of frame (header and payload).
func sealCompletion(frame []byte) []byte {
	copy(frame, completionMagic[:])
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(frame)-completionHeader))
	binary.BigEndian.PutUint32(frame[8:12], crc32.Checksum(frame[completionHeader:], castagnoli))
	return frame
}

// completionAt decodes the frame at b[off:]: its draft and size, or why it is not a sound frame.
func completionAt(b []byte, off int) (Draft, int, error) {
	rest := b[off:]
	if len(rest) < completionHeader {
		return Draft{}, 0, fmt.Errorf("%w: %d bytes left, a frame header needs %d", ErrCorrupt, len(rest), completionHeader)
	}
	if !bytes.Equal(rest[:4], completionMagic[:]) {
		return Draft{}, 0, fmt.Errorf("%w: no frame magic", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(rest[4:8])
	if uint64(n) > uint64(len(rest)-completionHeader) {
		return Draft{}, 0, fmt.Errorf("%w: frame of %d bytes, %d left", ErrCorrupt, n, len(rest)-completionHeader)
	}
	payload := rest[completionHeader : completionHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(rest[8:12]) {
		return Draft{}, 0, fmt.Errorf("%w: frame checksum mismatch", ErrCorrupt)
	}
	d, err := decodeCompletion(payload)
	if err != nil {
		return Draft{}, 0, err
	}
	return d, completionHeader + int(n), nil
}

// scanCompletions calls fn for every sound completion frame of b, in order, and returns the
// damaged regions skipped (resuming at the next offset where a sound frame starts). The written
// part ends at zeros or where nothing sound follows; damage with nothing sound after it is a torn
// tail.
func scanCompletions(b []byte, fn func(d Draft)) []frameDamage {
	var damage []frameDamage
	off := 0
	for off < len(b) {
		d, n, err := completionAt(b, off)
		if err == nil {
			fn(d)
			off += n
			continue
		}
		next := resyncCompletion(b, off+1)
		if next < 0 {
			if len(bytes.Trim(b[off:], "\x00")) > 0 {
				damage = append(damage, frameDamage{Offset: int64(off), Reason: err.Error(), Tail: true})
			}
			break
		}
		damage = append(damage, frameDamage{Offset: int64(off), Reason: err.Error()})
		off = next
	}
	return damage
}

func resyncCompletion(b []byte, from int) int {
	for from < len(b) {
		i := bytes.Index(b[from:], completionMagic[:])
		if i < 0 {
			return -1
		}
		if _, _, err := completionAt(b, from+i); err == nil {
			return from + i
		}
		from += i + 1
	}
	return -1
}
