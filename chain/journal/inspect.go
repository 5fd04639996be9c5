package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Inspection is what a read-only look at a journal file found.
type Inspection struct {
	ChainID  string
	Last     uint64 // the head recorded in the file
	LastHash string
	Records  int            // retained records read
	Damaged  []RecordDamage // records that fail on their own, in key order
}

// RecordDamage is one retained record that cannot be trusted, and why.
type RecordDamage struct {
	Sequence uint64
	Reason   string
}

// Inspect opens the journal at path read-only — the file is never modified, nothing is cut or
// recovered — and calls fn for every sound retained record with sequence >= from, in sequence
// order. Records that fail on their own (checksum, decoding, key, chain, hash) are not passed to
// fn; they are listed in the result. fn's error stops the walk and is returned.
func Inspect(ctx context.Context, path string, from uint64, fn func(*chain.Event) error) (Inspection, error) {
	var in Inspection
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return in, fmt.Errorf("opening journal %s read-only: locked by a running flowker-audit (stop it first)", path)
		}
		return in, fmt.Errorf("opening journal %s read-only: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		meta, events := tx.Bucket(bucketMeta), tx.Bucket(bucketEvents)
		if meta == nil || events == nil {
			return fmt.Errorf("%s is not a flowker-audit journal (no meta or events bucket)", path)
		}
		in.ChainID = string(meta.Get(keyChainID))
		in.Last, in.LastHash = readU64(meta.Get(keyHeadSeq)), string(meta.Get(keyHeadHsh))
		c := events.Cursor()
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			in.Records++
			seq := readU64(k)
			e, derr := decodeRecord(v)
			reason := ""
			switch {
			case derr != nil:
				reason = derr.Error()
			case e.Sequence != seq:
				reason = fmt.Sprintf("record holds sequence %d under key %d", e.Sequence, seq)
			case e.ChainID != in.ChainID:
				reason = fmt.Sprintf("record of chain %q", e.ChainID)
			case e.ComputeHash() != e.Hash:
				reason = "hash mismatch"
			}
			if reason != "" {
				in.Damaged = append(in.Damaged, RecordDamage{Sequence: seq, Reason: reason})
				continue
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
		return nil
	})
	return in, err
}
