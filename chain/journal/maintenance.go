package journal

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compact removes events at or below upTo (the lowest cursor of all sinks), in chunks, and
// returns how many were removed.
func (j *Journal) Compact(ctx context.Context, upTo uint64) (int, error) {
	return j.inChunks(ctx, request{kind: kindCompact, seq: upTo}, compactChunkSize)
}

// Chunk sizes of the maintenance requests: each is one writer transaction, shared with the
// appends queued at that moment, so that they never wait behind a long one (at 1,000 audited
// requests/s, compaction removes about 1,000 events of ~2 KB every second).
const (
	compactChunkSize   = 512
	pruneOnceChunkSize = 10000
)

// inChunks submits copies of r until one handles less than a full chunk, and returns the total.
func (j *Journal) inChunks(ctx context.Context, r request, chunk int) (int, error) {
	total := 0
	for {
		c := r
		c.done = make(chan result, 1)
		if err := j.submit(ctx, &c); err != nil {
			return total, err
		}
		res := <-c.done
		total += res.n
		if res.err != nil || res.n < chunk {
			return total, res.err
		}
	}
}

// PruneOnce forgets Once keys written before `before`, so that the key set does not grow
// forever: after that, an Append with such a key is no longer refused as a duplicate. It returns
// the number of keys removed.
func (j *Journal) PruneOnce(ctx context.Context, before time.Time) (int, error) {
	return j.inChunks(ctx, request{kind: kindPruneOnce, ts: before.Unix()}, pruneOnceChunkSize)
}

// releaseOnce deletes the Once keys whose event is one of the cut records (keys: sequences).
func releaseOnce(once *bolt.Bucket, cut [][]byte) error {
	seqs := map[uint64]bool{}
	for _, k := range cut {
		seqs[readU64(k)] = true
	}
	var dead [][]byte
	c := once.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) >= 8 && seqs[readU64(v[:8])] {
			dead = append(dead, append([]byte(nil), k...))
		}
	}
	for _, k := range dead {
		if err := once.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneOnceChunk deletes up to limit Once keys written before the unix time cutoff. Keys from
// before timestamps were recorded (an 8-byte value) are kept.
func pruneOnceChunk(once *bolt.Bucket, cutoff int64, limit int) (int, error) {
	var dead [][]byte
	c := once.Cursor()
	for k, v := c.First(); k != nil && len(dead) < limit; k, v = c.Next() {
		if len(v) == 16 && int64(readU64(v[8:])) < cutoff {
			dead = append(dead, append([]byte(nil), k...))
		}
	}
	for _, k := range dead { // deleted after the walk: deleting under a bbolt cursor can skip keys
		if err := once.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}

func compactChunk(events *bolt.Bucket, upTo uint64, max int) (n int, freed int64, err error) {
	// Collect first, then delete: deleting under a cursor makes it skip the next key.
	var keys [][]byte
	c := events.Cursor()
	for k, v := c.First(); k != nil && len(keys) < max && readU64(k) <= upTo; k, v = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		freed += int64(len(v))
	}
	for _, k := range keys {
		if err := events.Delete(k); err != nil {
			return n, freed, err
		}
		n++
	}
	return n, freed, nil
}
