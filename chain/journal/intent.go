package journal

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
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
}

// IntentDamage is an intent record that failed its checks at Open and was cut.
type IntentDamage struct {
	Position int    // 0-based position among the intent records, in key order
	Key      string // the record's key (the event id), sanitised for logs
	Reason   string
}

// Intent record format (version 1), stored in bucket "intents" under the event id:
//
//	byte     version (1)
//	varint   start, Unix microseconds
//	10 × (uvarint length, bytes): id, eventType, action, resourceId, resourceType, actorType,
//	         actorId, actorIp, context, metadata, detail — 11 in all
//	uint32   CRC-32C of everything before it, big-endian
const intentVersion = 1

func appendIntent(dst []byte, in *Intent) []byte {
	d := &in.Draft
	if dst == nil {
		n := 1 + binary.MaxVarintLen64 + 4 + 11*binary.MaxVarintLen32 + len(in.ID) + len(d.EventType) + len(d.Action) +
			len(d.ResourceID) + len(d.ResourceType) + len(d.Actor.Type) + len(d.Actor.ID) + len(d.Actor.IPAddress) +
			len(d.Context) + len(d.Metadata) + len(in.Detail)
		dst = make([]byte, 0, n)
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

// decodeIntent decodes an intent record stored under key; the result does not alias b.
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
	if r.err == nil && in.ID != string(key) {
		r.err = fmt.Errorf("%w: intent %q stored under key %q", ErrCorrupt, in.ID, key)
	}
	if r.err != nil {
		return Intent{}, r.err
	}
	return in, nil
}

// Intend makes in durable (group commit, like Append) before the request it describes is
// forwarded. It fails with ErrFull at the size bound and with an error wrapping ErrFailed when the
// journal cannot write (a full disk, an I/O error): the request must then not be forwarded
// (fail_closed) or be forwarded with the gap counted (fail_open).
func (j *Journal) Intend(ctx context.Context, in Intent) error {
	if in.ID == "" || len(in.ID) > bolt.MaxKeySize {
		return fmt.Errorf("intent id of %d bytes", len(in.ID))
	}
	r := &request{kind: kindIntent, intent: &in, start: time.Now(), done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return err
	}
	res := <-r.done // once submitted, awaited: the caller must know whether the intent exists
	if res.err == nil {
		j.m.IntentDuration.Observe(time.Since(r.start).Seconds())
	}
	return res.err
}

// Resolve removes an intent without an event (the request turned out to need none, such as an
// idempotent replay). Appending a Draft whose Resolves names the intent removes it too.
func (j *Journal) Resolve(ctx context.Context, id string) error {
	r := &request{kind: kindResolve, name: id, done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return err
	}
	return (<-r.done).err
}

// Intents returns every unresolved intent, in key order.
func (j *Journal) Intents() ([]Intent, error) {
	var out []Intent
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIntents).ForEach(func(k, v []byte) error {
			in, err := decodeIntent(k, v)
			if err != nil {
				return fmt.Errorf("intent %q: %w", k, err)
			}
			out = append(out, in)
			return nil
		})
	})
	return out, err
}

// Pending returns the number of unresolved intents.
func (j *Journal) Pending() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.intents
}

// stageIntent writes one intent inside the commit transaction.
func (j *Journal) stageIntent(in *Intent, st *batchState, intents *bolt.Bucket) (result, error) {
	rec := appendIntent(nil, in)
	if st.size+st.intentBytes+int64(len(rec))+reserve > j.opts.MaxBytes {
		return result{err: ErrFull}, nil
	}
	// Intent ids are fresh event ids (UUIDv7), so no lookup first: a repeated id would only make
	// the pending count one too high until the next Open recounts it.
	st.intentDelta++
	if err := intents.Put([]byte(in.ID), rec); err != nil {
		return result{}, err
	}
	st.intentBytes += int64(len(rec))
	return result{n: len(rec)}, nil
}

// resolveIntent deletes intent id (if present) inside the commit transaction.
func resolveIntent(id string, st *batchState, intents *bolt.Bucket) error {
	if id == "" {
		return nil
	}
	c := intents.Cursor() // one search for both the check and the delete
	if k, _ := c.Seek([]byte(id)); k == nil || string(k) != id {
		return nil
	}
	st.intentDelta--
	return c.Delete()
}

// checkIntents re-verifies every intent record at Open: damaged ones are cut (they can no longer
// be resolved into an event, and keeping them would block nothing but report them at every
// start) and reported with their position; every sound one after them is kept.
func (j *Journal) checkIntents(tx *bolt.Tx, rec *Recovery) error {
	intents := tx.Bucket(bucketIntents)
	var bad [][]byte
	pos := 0
	err := intents.ForEach(func(k, v []byte) error {
		if _, err := decodeIntent(k, v); err != nil {
			rec.IntentsCut = append(rec.IntentsCut, IntentDamage{Position: pos, Key: chain.CleanText(string(k), 128), Reason: err.Error()})
			bad = append(bad, append([]byte(nil), k...))
		} else {
			j.intents++
		}
		pos++
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range bad {
		if err := intents.Delete(k); err != nil {
			return err
		}
	}
	rec.IntentsPending = int(j.intents)
	return nil
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
