package journal

import (
	"errors"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrLocked reports a journal file held by a running flowker-audit (bbolt's file lock).
var ErrLocked = errors.New("locked by a running flowker-audit (stop it first)")

// Hold opens the journal at path read-only and keeps it open until the returned Closer is
// closed: its shared file lock keeps a sidecar from opening the journal meanwhile (for offline
// operator commands that must not race with delivery). It fails with an error wrapping
// ErrLocked while a sidecar holds the journal. Inspect may be called on the same path while it
// is held.
func Hold(path string) (io.Closer, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening journal %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening journal %s read-only: %w", path, err)
	}
	return db, nil
}

// ReadCursors returns the persisted delivery cursor of every sink, read-only (the file is not
// modified; a running sidecar's lock makes it fail with an error wrapping ErrLocked).
func ReadCursors(path string) (map[string]uint64, error) {
	db, err := Hold(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[string]uint64{}
	err = db.(*bolt.DB).View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = readU64(v)
			return nil
		})
	})
	return out, err
}
