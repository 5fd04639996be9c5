package journal

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

const oldBucketName = "bbolt intents bucket"

// openIntents reads the intent log at Open: every segment is scanned (damaged frames reported
// and skipped), an intent whose id has no key in the resolved bucket is pending; intents left in
// the former bbolt intents bucket are moved into the log; fully resolved segments are deleted and
// resolved keys that name no remaining intent removed.
func (j *Journal) openIntents(rec *Recovery) error {
	size := j.opts.IntentSegmentBytes
	if size <= 0 {
		size = DefaultIntentSegmentBytes
	}
	l := &intentLog{
		dir: filepath.Dir(j.opts.Path), prefix: filepath.Base(j.opts.Path), segBytes: size, noSync: j.opts.NoSync,
		m: j.m, log: j.log, reqs: make(chan *intentReq, 8192), stop: make(chan struct{}), done: make(chan struct{}),
		pending: map[string]*segment{}, nextNo: 1,
	}
	j.ilog = l
	nos, err := l.listSegments()
	if err != nil {
		return err
	}
	resolved := map[string]bool{}
	var old []Intent
	err = j.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketResolved).ForEach(func(k, _ []byte) error {
			resolved[string(k)] = true
			return nil
		}); err != nil {
			return err
		}
		pos := int64(0)
		return tx.Bucket(bucketIntents).ForEach(func(k, v []byte) error {
			in, err := decodeIntent(k, v)
			if err != nil {
				rec.IntentsCut = append(rec.IntentsCut, IntentDamage{Segment: oldBucketName, Position: pos,
					Key: chain.CleanText(string(k), 128), Reason: err.Error()})
			} else {
				old = append(old, in)
			}
			pos++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("reading resolved intents: %w", err)
	}
	for _, no := range nos {
		s := &segment{no: no, path: filepath.Join(l.dir, segmentName(l.prefix, no))}
		b, err := os.ReadFile(s.path)
		if err != nil {
			return fmt.Errorf("reading intent segment: %w", err)
		}
		for _, d := range scanFrames(b, func(_ int64, in Intent) {
			s.ids = append(s.ids, in.ID)
			if !resolved[in.ID] && l.pending[in.ID] == nil {
				l.pending[in.ID] = s
				s.pending++
			}
		}) {
			rec.IntentsCut = append(rec.IntentsCut, IntentDamage{Segment: filepath.Base(s.path), Position: d.Offset, Reason: d.Reason, Tail: d.Tail})
		}
		l.segs = append(l.segs, s)
		l.nextNo = no + 1
	}
	// Migration: intents of the former design, moved into the log before the bucket is emptied
	// (a crash in between finds them in both; each is pending once).
	var batch []*intentReq
	for i := range old {
		if l.pending[old[i].ID] == nil && !resolved[old[i].ID] {
			batch = append(batch, &intentReq{id: old[i].ID, frame: appendFrame(nil, appendIntent(nil, &old[i])), done: make(chan error, 1)})
		}
	}
	for len(batch) > 0 {
		n := min(len(batch), maxIntentBatch)
		l.commit(batch[:n])
		for _, r := range batch[:n] {
			if err := <-r.done; err != nil {
				return fmt.Errorf("moving the intents of the bbolt bucket into the intent log: %w", err)
			}
		}
		batch = batch[n:]
	}
	// Segments with nothing unresolved go, then the keys that name no remaining intent.
	keep := map[string]bool{}
	var segs []*segment
	for _, s := range l.segs {
		if s.pending == 0 && s != l.tail {
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("deleting a resolved intent segment: %w", err)
			}
			continue
		}
		segs = append(segs, s)
		for _, id := range s.ids {
			keep[id] = true
		}
	}
	l.segs = segs
	if len(old) > 0 || len(rec.IntentsCut) > 0 || len(resolved) > len(keep) {
		err = j.db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketIntents); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketIntents); err != nil {
				return err
			}
			b := tx.Bucket(bucketResolved)
			for id := range resolved {
				if !keep[id] {
					if err := b.Delete([]byte(id)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cleaning up resolved intents: %w", err)
		}
	}
	rec.IntentsPending = len(l.pending)
	j.m.IntentsPending.Set(float64(len(l.pending)))
	if len(rec.IntentsCut) > 0 {
		j.m.IntentsCut.Add(float64(len(rec.IntentsCut)))
		for _, d := range rec.IntentsCut {
			if d.Tail {
				j.log.Warn("torn intent log tail cut: a write interrupted by a crash before its fdatasync (its request was never forwarded)",
					"segment", d.Segment, "position", d.Position, "reason", d.Reason)
				continue
			}
			j.log.Error("damaged intent record cut: a request was forwarded but what it was can no longer be read",
				"segment", d.Segment, "position", d.Position, "key", d.Key, "reason", d.Reason)
		}
	}
	l.drop = j.dropSegment
	return nil
}
