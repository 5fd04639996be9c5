package journal

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

const oldBucketName = "bbolt intents bucket"

// openIntents reads the intent log at Open: every segment of this journal instance is scanned
// (damaged frames reported and skipped), and an intent none of whose positions has a key in the
// resolved bucket is pending; segments of another instance are reported and deleted; intents left
// in the former bbolt intents bucket are moved into the log; fully resolved segments are deleted
// and resolved keys that name no remaining segment removed.
func (j *Journal) openIntents(rec *Recovery, instance string) error {
	size := j.opts.IntentSegmentBytes
	if size <= 0 {
		size = DefaultIntentSegmentBytes
	}
	if size >= 1<<32 {
		return fmt.Errorf("intent segments of %d bytes: at most 4 GiB", size)
	}
	l := &intentLog{
		dir: filepath.Dir(j.opts.Path), prefix: filepath.Base(j.opts.Path), instance: instance, segBytes: size, noSync: j.opts.NoSync,
		m: j.m, log: j.log, reqs: make(chan *intentReq, 8192), stop: make(chan struct{}), done: make(chan struct{}),
		pending: map[string]pendingIntent{}, nextNo: 1,
	}
	j.ilog = l
	nos, foreign, err := l.listSegments()
	if err != nil {
		return err
	}
	if err := j.dropForeignSegments(rec, l, foreign); err != nil {
		return err
	}
	resolved := map[uint64][]byte{} // segment number → bitmap of its resolved frame indices
	var stale [][]byte              // keys that are no segment's bitmap
	var old []Intent
	err = j.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketResolved).ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				resolved[readU64(k)] = append([]byte(nil), v...)
			} else {
				stale = append(stale, append([]byte(nil), k...))
			}
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
	// An intent is pending when none of its frames (an id is written once; twice only by a
	// migration cut short) was resolved.
	type frameAtPos struct {
		id  string
		seg *segment
		pos uint64
	}
	var frames []frameAtPos
	done := map[string]bool{}
	for _, no := range nos {
		s := &segment{no: no, path: filepath.Join(l.dir, segmentName(l.prefix, l.instance, no))}
		b, err := os.ReadFile(s.path)
		if err != nil {
			return fmt.Errorf("reading intent segment: %w", err)
		}
		bm := resolved[no]
		for _, d := range scanFrames(b, no, func(_ int64, f frame) {
			if resolvedIn(bm, f.idx) {
				done[f.in.ID] = true
			} else {
				frames = append(frames, frameAtPos{id: f.in.ID, seg: s, pos: position(no, f.idx)})
			}
		}) {
			rec.IntentsCut = append(rec.IntentsCut, IntentDamage{Segment: filepath.Base(s.path), Position: d.Offset, Reason: d.Reason, Tail: d.Tail})
		}
		l.segs = append(l.segs, s)
		l.nextNo = no + 1
	}
	for _, f := range frames {
		if !done[f.id] {
			if _, dup := l.pending[f.id]; !dup {
				l.pending[f.id] = pendingIntent{seg: f.seg, pos: f.pos}
				f.seg.pending++
			}
		}
	}
	// Migration: intents of the former design, moved into the log before the bucket is emptied
	// (a crash in between finds them in both; each is pending once).
	var batch []*intentReq
	for i := range old {
		if _, inLog := l.pending[old[i].ID]; !inLog && !done[old[i].ID] {
			batch = append(batch, &intentReq{id: old[i].ID, frame: appendFrame(nil, anySegment, 0, appendIntent(nil, &old[i])), done: make(chan error, 1)})
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
	// Segments with nothing unresolved go, then the keys that name no remaining segment.
	keep := map[uint64]bool{}
	var segs []*segment
	for _, s := range l.segs {
		if s.pending == 0 && s != l.tail {
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("deleting a resolved intent segment: %w", err)
			}
			continue
		}
		segs = append(segs, s)
		keep[s.no] = true
	}
	l.segs = segs
	for no := range resolved {
		if !keep[no] {
			stale = append(stale, u64(no))
		}
	}
	if len(old) > 0 || len(rec.IntentsCut) > 0 || len(stale) > 0 {
		err = j.db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketIntents); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketIntents); err != nil {
				return err
			}
			b := tx.Bucket(bucketResolved)
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return err
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

// dropForeignSegments deletes the segments of another journal instance: the bbolt file that knew
// which of their intents were resolved is gone (deleted, replaced or recreated), and with it the
// events it held, so recovering them would record again what may already be in the sinks. They
// are counted (rec.IntentsForeign, the foreign-intents metric) and named in the log.
func (j *Journal) dropForeignSegments(rec *Recovery, l *intentLog, names []string) error {
	for _, name := range names {
		path := filepath.Join(l.dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading intent segment of another journal: %w", err)
		}
		n := 0
		scanFrames(b, anySegment, func(int64, frame) { n++ })
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("deleting intent segment of another journal: %w", err)
		}
		rec.IntentsForeign += n
		rec.ForeignSegments = append(rec.ForeignSegments, name)
		j.m.IntentsForeign.Add(float64(n))
		j.log.Error("intent segment of another journal file deleted: the journal file was lost or replaced, and with it which of these intents had their event (not recovered, like the lost journal's events)",
			"segment", name, "intents", n, "journal", j.opts.Path)
	}
	return nil
}
