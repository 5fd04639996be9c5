package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

var _ sink.CheckpointWriter = (*Sink)(nil)

// checkpointLine is one line of the forwarded checkpoint file: the same JSON as the sidecar's
// checkpoint log (chain/checkpoint), so `flowker-audit verify --checkpoints FILE` reads it.
type checkpointLine struct {
	ChainID   string `json:"chainId"`
	Sequence  uint64 `json:"sequence"`
	Hash      string `json:"hash"`
	Time      string `json:"time"`
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"`
}

// CheckpointFile is the name of the file, in dir, that forwarded checkpoints are appended to.
func CheckpointFile(prefix string) string { return prefix + ".checkpoints.ndjson" }

// WriteCheckpoints appends the signed checkpoints it has not written yet to
// <dir>/<prefix>.checkpoints.ndjson and syncs it: a witness copy of the checkpoint log wherever
// the file sink's directory is shipped or mounted.
func (s *Sink) WriteCheckpoints(ctx context.Context, cps []sink.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return errors.New("file sink: WriteCheckpoints before Configure")
	}
	path := filepath.Join(s.cfg.Dir, CheckpointFile(s.cfg.Prefix))
	if s.cpSeen == nil {
		seen, err := readCheckpointKeys(path)
		if err != nil {
			return err
		}
		s.cpSeen = seen
	}
	var buf []byte
	for _, c := range cps {
		k := c.ChainID + "\x00" + c.Signature
		if s.cpSeen[k] {
			continue
		}
		b, err := json.Marshal(checkpointLine{ChainID: c.ChainID, Sequence: c.Sequence, Hash: c.Hash,
			Time: c.Time.UTC().Format(chain.TimestampLayout), KeyID: c.KeyID, Signature: c.Signature})
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	if len(buf) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fsErr(fmt.Errorf("opening %s: %w", path, err))
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsErr(fmt.Errorf("writing %s: %w", path, err))
	}
	for _, c := range cps {
		s.cpSeen[c.ChainID+"\x00"+c.Signature] = true
	}
	return nil
}

// readCheckpointKeys returns the (chain, signature) keys already in the file at path.
func readCheckpointKeys(path string) (map[string]bool, error) {
	seen := map[string]bool{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return seen, nil
	}
	if err != nil {
		return nil, fsErr(fmt.Errorf("reading %s: %w", path, err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l checkpointLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			seen[l.ChainID+"\x00"+l.Signature] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fsErr(fmt.Errorf("reading %s: %w", path, err))
	}
	return seen, nil
}
