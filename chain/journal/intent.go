package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Intent is the durable note, written before an audited request is forwarded to Flowker, that the
// request is about to change something. It is not a chain event and takes no sequence number: the
// event that later resolves it (Draft.Resolves) is. An intent still unresolved at start means the
// sidecar died (or its journal failed) between forwarding and journaling the event; recovery turns
// it into exactly one event.
type Intent struct {
	// ID is the event id the request's event carries (the client's X-Audit-Id).
	ID string
	// Start is when the sidecar received the request.
	Start time.Time
	// Draft is the event as far as it is known before forwarding (from the rule, the path, the
	// request and its actor); Result is empty. Once, Watch and Unwatch are not stored.
	Draft Draft
	// Detail is opaque to the journal: what the proxy needs to learn the outcome later.
	Detail []byte
	// Completion, in an intent Intents returns, is its event as the sidecar observed it: the
	// request was answered and the event written to the completion log (Complete), but the
	// process died before the event was appended. Recovery appends it as it is. Nil when the
	// event was never written (or lost with the machine's page cache).
	Completion *Draft
}

// IntentDamage is a region of the intent log (or a record of the former bbolt intents bucket)
// that failed its checks at Open and was cut.
type IntentDamage struct {
	// Segment is the intent log file (or "bbolt intents bucket"); Position the byte offset of the
	// damage in it (in the bucket: the record's 0-based position in key order).
	Segment  string
	Position int64
	// Key is the record's key in the former bucket (the event id), sanitised for logs; empty in
	// the log, where the id of a damaged frame cannot be trusted.
	Key    string
	Reason string
	// Tail is true for damage with no sound frame after it in its segment: a write cut by a crash
	// before its fdatasync (its intent was never acknowledged, so its request was not forwarded).
	Tail bool
}

// Intent record format (version 1), the payload of an intent log frame (intentlog.go); the former
// design stored it in bucket "intents" under the event id:
//
//	byte     version (1)
//	varint   start, Unix microseconds
//	10 × (uvarint length, bytes): id, eventType, action, resourceId, resourceType, actorType,
//	         actorId, actorIp, context, metadata, detail — 11 in all
//	uint32   CRC-32C of everything before it, big-endian
const intentVersion = 1

// intentSize bounds the size of in's record.
func intentSize(in *Intent) int {
	d := &in.Draft
	return 1 + binary.MaxVarintLen64 + 4 + 11*binary.MaxVarintLen32 + len(in.ID) + len(d.EventType) + len(d.Action) +
		len(d.ResourceID) + len(d.ResourceType) + len(d.Actor.Type) + len(d.Actor.ID) + len(d.Actor.IPAddress) +
		len(d.Context) + len(d.Metadata) + len(in.Detail)
}

func appendIntent(dst []byte, in *Intent) []byte {
	d := &in.Draft
	if dst == nil {
		dst = make([]byte, 0, intentSize(in))
	}
	start := len(dst)
	dst = append(dst, intentVersion)
	dst = binary.AppendVarint(dst, in.Start.UnixMicro())
	for _, f := range [...]string{in.ID, d.EventType, d.Action, d.ResourceID, d.ResourceType, d.Actor.Type, d.Actor.ID, d.Actor.IPAddress} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	for _, f := range [...][]byte{d.Context, d.Metadata, in.Detail} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// decodeIntent decodes an intent record stored under key (nil: not checked); the result does not
// alias b.
func decodeIntent(key, b []byte) (Intent, error) {
	var in Intent
	if len(b) < 5 {
		return in, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return in, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[0] != intentVersion {
		return in, fmt.Errorf("%w: unknown intent version %d", ErrCorrupt, body[0])
	}
	owned := append([]byte(nil), body[1:]...)
	r := &reader{b: owned}
	in.Start = time.UnixMicro(r.varint()).UTC()
	str := func() string { return string(r.bytes()) }
	in.ID = str()
	d := &in.Draft
	d.EventID = in.ID
	d.EventType, d.Action, d.ResourceID, d.ResourceType = str(), str(), str(), str()
	d.Actor = chain.Actor{Type: str(), ID: str(), IPAddress: str()}
	d.Context, d.Metadata, in.Detail = r.bytes(), r.bytes(), r.bytes()
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if r.err == nil && key != nil && in.ID != string(key) {
		r.err = fmt.Errorf("%w: intent %q stored under key %q", ErrCorrupt, in.ID, key)
	}
	if r.err != nil {
		return Intent{}, r.err
	}
	return in, nil
}

// Intend makes in durable in the intent log (its own group commit: one write and one fdatasync
// per group) before the request it describes is forwarded. It fails with ErrFull at the size
// bound and with an error wrapping ErrFailed when the journal cannot write (a full disk, an I/O
// error): the request must then not be forwarded (fail_closed) or be forwarded with the gap
// counted (fail_open).
func (j *Journal) Intend(ctx context.Context, in Intent) error {
	if in.ID == "" || len(in.ID) > bolt.MaxKeySize {
		return fmt.Errorf("intent id of %d bytes", len(in.ID))
	}
	start := time.Now()
	r := intentReqs.Get().(*intentReq)
	r.id, r.frame = in.ID, appendIntentFrame(r.frame[:0], &in)
	release := func() {
		r.id = ""
		if cap(r.frame) <= maxPooledFrame {
			intentReqs.Put(r)
		}
	}
	if int64(len(r.frame)) > j.ilog.segBytes {
		n := len(r.frame)
		release()
		return fmt.Errorf("intent of %d bytes is larger than an intent segment", n)
	}
	j.mu.Lock()
	failed, full := j.failed, j.bytes+reserve+int64(len(r.frame)) > j.opts.MaxBytes
	j.mu.Unlock()
	switch {
	case failed != nil:
		// The events of forwarded requests could not be journaled either.
		release()
		return fmt.Errorf("%w: %v", ErrFailed, failed)
	case full:
		release()
		return ErrFull
	}
	j.submitMu.RLock()
	if j.closed.Load() {
		j.submitMu.RUnlock()
		release()
		return ErrClosed
	}
	select {
	case j.ilog.reqs <- r:
		j.submitMu.RUnlock()
	case <-ctx.Done():
		j.submitMu.RUnlock()
		release()
		return fmt.Errorf("waiting to write an intent: %w", ctx.Err())
	}
	err := <-r.done // once queued, awaited: the caller must know whether the intent exists
	release()       // answered: the log has copied the frame and holds no reference to r
	if err == nil {
		j.m.IntentDuration.Observe(time.Since(start).Seconds())
	}
	return err
}

// intentReqs reuses intent requests and their frame buffers (a request's intent is about as
// large as its captured body, and one is made per audited request).
var intentReqs = sync.Pool{New: func() any { return &intentReq{done: make(chan error, 1)} }}

// maxPooledFrame bounds the frame buffers kept for reuse.
const maxPooledFrame = 64 << 10

// Resolve resolves an intent without an event (the request turned out to need none, such as an
// idempotent replay). Appending a Draft whose Resolves names the intent resolves it too.
func (j *Journal) Resolve(ctx context.Context, id string) error {
	r := &request{kind: kindResolve, name: id, done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return err
	}
	return (<-r.done).err
}

// Intents returns every unresolved intent, each once: first those with a Completion, in the order
// their completions were written (the order their requests were answered), then the others in
// id order.
func (j *Journal) Intents() ([]Intent, error) {
	l := j.ilog
	l.mu.Lock()
	segs := slices.Clone(l.segs)
	l.mu.Unlock()
	var out []Intent
	rank := map[string]int{}
	seen := map[string]bool{}
	for _, s := range segs {
		b, err := l.readSegment(s)
		if errors.Is(err, fs.ErrNotExist) {
			continue // dropped meanwhile: everything in it was resolved
		}
		if err != nil {
			return nil, err
		}
		scanFrames(b, s.no, func(_ int64, f frame) {
			if !seen[f.in.ID] && l.has(f.in.ID) {
				seen[f.in.ID] = true
				in := f.in
				if d, r, ok := j.clog.completion(in.ID); ok {
					in.Completion = &d
					rank[in.ID] = r
				}
				out = append(out, in)
			}
		})
	}
	slices.SortFunc(out, func(a, b Intent) int {
		switch ca, cb := a.Completion != nil, b.Completion != nil; {
		case ca && cb:
			return rank[a.ID] - rank[b.ID]
		case ca != cb:
			if ca {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Pending returns the number of unresolved intents.
func (j *Journal) Pending() int64 { return j.ilog.count() }

// resolveIntent records, inside the commit transaction, that intent id (if unresolved) is
// resolved: a small key in the resolved bucket. The intent log learns it once committed.
func (j *Journal) resolveIntent(id string, st *batchState, b *buckets) error {
	if id == "" || st.resolved[id] {
		return nil
	}
	pos, ok := j.ilog.positionOf(id)
	if !ok {
		return nil
	}
	if st.resolved == nil {
		st.resolved = map[string]bool{}
		st.bitmaps = map[uint64][]byte{}
	}
	no, idx := pos>>32, uint32(pos)
	bm, loaded := st.bitmaps[no]
	if !loaded {
		bm = append([]byte(nil), b.resolvedB().Get(u64(no))...)
	}
	if need := int(idx/8) + 1; len(bm) < need {
		bm = append(bm, make([]byte, need-len(bm))...)
	}
	bm[idx/8] |= 1 << (idx % 8)
	st.bitmaps[no] = bm
	st.resolved[id] = true
	st.resolvedIDs = append(st.resolvedIDs, id)
	return nil
}

// putBitmaps stores the resolution bitmaps a batch changed (one small value per segment touched,
// rather than a key per intent).
func putBitmaps(st *batchState, b *buckets) error {
	for no, bm := range st.bitmaps {
		if err := b.resolvedB().Put(u64(no), bm); err != nil {
			return err
		}
	}
	return nil
}

// resolvedIn reports whether frame idx is marked in bitmap bm.
func resolvedIn(bm []byte, idx uint32) bool {
	return int(idx/8) < len(bm) && bm[idx/8]&(1<<(idx%8)) != 0
}

// dropSegment recycles a fully resolved segment that is no longer the tail as the next spare (or
// deletes it when a spare is ready), then removes its resolution bitmap from the resolved bucket
// (in the next group commit). The bitmap goes only once the rename or deletion is durable: a
// crash before that finds the segment under its old name with its bitmap, a crash after it finds
// a bitmap that names no segment, which Open removes.
func (j *Journal) dropSegment(s *segment) {
	recycled, err := j.ilog.recycle(s)
	if err != nil {
		j.log.Warn("cannot recycle a resolved intent segment (its keys are removed at the next start)", "segment", s.path, "err", err)
		return
	}
	if !recycled {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.log.Warn("cannot delete a resolved intent segment", "segment", s.path, "err", err)
			return
		}
		if !j.opts.NoSync {
			if err := syncDir(filepath.Dir(s.path)); err != nil {
				j.log.Warn("cannot make the deletion of a resolved intent segment durable (its keys are removed at the next start)", "segment", s.path, "err", err)
				return
			}
		}
	}
	j.ilog.forget(s)
	r := &request{kind: kindForget, seq: s.no, done: make(chan result, 1)}
	if err := j.submit(context.Background(), r); err != nil {
		return // closing: Open removes the bitmap
	}
	if err := (<-r.done).err; err != nil {
		j.log.Warn("cannot remove the resolution bitmap of a dropped intent segment (removed at the next start)", "err", err)
	}
}

// OnceUsed reports whether an event with once-key key was journaled (and its key not pruned).
func (j *Journal) OnceUsed(key string) (bool, error) {
	var used bool
	err := j.db.View(func(tx *bolt.Tx) error {
		used = tx.Bucket(bucketOnce).Get([]byte(key)) != nil
		return nil
	})
	return used, err
}
