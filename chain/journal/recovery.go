package journal

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

// instancePattern is the form of a journal instance id.
var instancePattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func (j *Journal) recover() (*Recovery, string, error) {
	rec := &Recovery{}
	var instance string
	err := j.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketEvents, bucketCursors, bucketOnce, bucketWatch, bucketIntents, bucketResolved} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if f := meta.Get(keyFormat); f != nil && string(f) != formatVersion {
			return fmt.Errorf("journal format %q is not supported by this build (expected %s)", f, formatVersion)
		}
		stored := string(meta.Get(keyChainID))
		switch {
		case stored == "" && j.opts.ChainID != "":
			j.chainID, rec.Fresh = j.opts.ChainID, true
		case stored == "":
			j.chainID, rec.Fresh = NewChainID(), true
		case j.opts.ChainID != "" && j.opts.ChainID != stored:
			return fmt.Errorf("journal belongs to chain %q but chain.id is %q: use the configured chain's own data_dir, or remove chain.id", stored, j.opts.ChainID)
		default:
			j.chainID = stored
		}
		if !chainIDPattern.MatchString(j.chainID) {
			return fmt.Errorf("invalid chain id %q", j.chainID)
		}
		if err := meta.Put(keyChainID, []byte(j.chainID)); err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		instance = string(meta.Get(keyInstance))
		if !instancePattern.MatchString(instance) {
			// A new file (or one written before intent segments were bound to their file).
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("making the journal instance id: %w", err)
			}
			instance = hex.EncodeToString(b[:])
			if err := meta.Put(keyInstance, []byte(instance)); err != nil {
				return err
			}
		}
		j.head = head{seq: readU64(meta.Get(keyHeadSeq)), hash: string(meta.Get(keyHeadHsh)), ts: int64(readU64(meta.Get(keyHeadTS)))}
		return j.checkTail(tx, rec)
	})
	if err != nil {
		return nil, "", fmt.Errorf("recovering journal: %w", err)
	}
	rec.ChainID, rec.Last = j.chainID, j.head.seq
	rec.Retained = uint64(j.entries)
	if rec.CutCount > 0 {
		j.m.RecoveryCut.Add(float64(rec.CutCount))
		j.m.EventsLost.WithLabelValues("journal_corrupt").Add(float64(rec.CutLost))
		where := "at the tail"
		if rec.CutInMiddle {
			where = "in the middle of the re-verified records"
		}
		attrs := []any{"where", where, "first_cut_sequence", rec.CutFrom, "records_cut", rec.CutCount,
			"held_by_every_sink", rec.CutHeld, "lost", rec.CutLost, "reason", rec.CutReason, "resumes_after", rec.Last}
		if rec.CutLost > 0 {
			j.log.Error("damaged journal records were cut; some were not yet acknowledged by every sink and are lost", attrs...)
		} else {
			j.log.Warn("damaged journal records were cut; every sink had already acknowledged them (they are in the sinks, not lost)", attrs...)
		}
	}
	return rec, instance, nil
}

// checkTail re-verifies the last TailCheck records. Records that fail on their own (checksum,
// decoding, key, chain, hash) are cut; the head moves to the last good record. A broken link
// between two individually sound records is not damage but a chain defect: it is logged and left
// for verification to report.
func (j *Journal) checkTail(tx *bolt.Tx, rec *Recovery) error {
	events := tx.Bucket(bucketEvents)
	c := events.Cursor()
	var n, size int64
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n == 0 {
			j.first = readU64(k)
		}
		n++
		size += int64(len(v))
	}
	j.entries, j.bytes = n, size
	if n == 0 {
		return nil
	}
	k, _ := c.Last()
	for i := 1; i < j.opts.TailCheck; i++ {
		pk, _ := c.Prev()
		if pk == nil {
			break
		}
		k = pk
	}
	var last *chain.Event
	var bad [][]byte
	for k, v := c.Seek(k); k != nil; k, v = c.Next() {
		seq := readU64(k)
		e, err := decodeRecord(v)
		reason := ""
		switch {
		case err != nil:
			reason = err.Error()
		case e.Sequence != seq:
			reason = fmt.Sprintf("record holds sequence %d under key %d", e.Sequence, seq)
		case e.ChainID != j.chainID:
			reason = fmt.Sprintf("record of chain %q", e.ChainID)
		case e.ComputeHash() != e.Hash:
			reason = "hash mismatch"
		}
		if reason != "" {
			if len(bad) == 0 {
				rec.CutFrom, rec.CutReason = seq, reason
			}
			bad = append(bad, append([]byte(nil), k...))
			j.bytes -= int64(len(v))
			j.entries--
			continue
		}
		if last != nil && (e.Sequence != last.Sequence+1 || e.PreviousHash != last.Hash) {
			j.log.Error("journal chain link broken between sound records; verification will report it",
				"sequence", e.Sequence, "previous_retained", last.Sequence)
		}
		rec.Checked++
		ev := e
		last = &ev
	}
	for _, k := range bad {
		if err := events.Delete(k); err != nil {
			return err
		}
	}
	rec.CutCount = len(bad)
	if len(bad) > 0 {
		// What every sink acknowledged is in the sinks: cutting it from the journal loses nothing.
		held, known := uint64(0), false
		if err := tx.Bucket(bucketCursors).ForEach(func(_, v []byte) error {
			if c := readU64(v); !known || c < held {
				held, known = c, true
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range bad {
			if known && readU64(k) <= held {
				rec.CutHeld++
			} else {
				rec.CutLost++
			}
		}
		rec.CutInMiddle = last != nil && last.Sequence > rec.CutFrom
		// A cut event never happened as far as the chain is concerned: release its Once key, so
		// that a retry of the same change (e.g. an execution start) is recorded.
		if err := releaseOnce(tx.Bucket(bucketOnce), bad); err != nil {
			return err
		}
	}
	if j.entries == 0 {
		j.first = 0
	} else if len(bad) > 0 {
		fk, _ := events.Cursor().First()
		j.first = readU64(fk)
	}
	switch {
	case last != nil && (last.Sequence != j.head.seq || len(bad) > 0):
		if last.Sequence != j.head.seq && len(bad) == 0 {
			j.log.Warn("journal head did not match the last record; using the last record", "head", j.head.seq, "last", last.Sequence)
		}
		j.head = head{seq: last.Sequence, hash: last.Hash, ts: last.Timestamp.UnixMicro()}
	case last == nil && len(bad) > 0:
		// Every re-verified record was damaged: continue after the record before the first cut,
		// whose hash is still known only if it lies outside the window.
		j.log.Error("every re-verified journal record was damaged", "first_cut", rec.CutFrom)
		if pk, pv := events.Cursor().Last(); pk != nil {
			if e, err := decodeRecord(pv); err == nil {
				j.head = head{seq: e.Sequence, hash: e.Hash, ts: e.Timestamp.UnixMicro()}
			}
		}
	}
	return putHead(tx.Bucket(bucketMeta), j.head)
}

// putHead records the chain head (recovery recounts the retained bytes from the records).
func putHead(meta *bolt.Bucket, h head) error {
	if err := meta.Put(keyHeadSeq, u64(h.seq)); err != nil {
		return err
	}
	if err := meta.Put(keyHeadHsh, []byte(h.hash)); err != nil {
		return err
	}
	return meta.Put(keyHeadTS, u64(uint64(h.ts)))
}
