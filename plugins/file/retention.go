package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Retention in the file sink works on whole rotated files: a file goes once every event in it
// belongs to the chain being retained, is older than the cutoff and at or below the bound every
// sink acknowledged. The file being appended to (the newest) is never removed. Anchors are
// appended to <dir>/<prefix>.anchors.ndjson (the JSON of chain/checkpoint.Anchor, one per line)
// before any file goes.

var _ sink.Retainer = (*Sink)(nil)

// AnchorFile is the name of the file, in dir, that retention anchors are appended to.
func AnchorFile(prefix string) string { return prefix + ".anchors.ndjson" }

// anchorLine is one line of the anchor file.
type anchorLine struct {
	ChainID   string `json:"chainId"`
	Sequence  uint64 `json:"sequence"`
	Hash      string `json:"hash"`
	Cutoff    string `json:"cutoff"`
	Time      string `json:"time"`
	KeyID     string `json:"keyId"`
	Signature string `json:"signature"`
}

// fileSummary is what retention needs to know about one rotated file.
type fileSummary struct {
	path        string
	onlyChain   bool // every line is an event of the chain asked about
	first, last chain.Event
	newest      time.Time // the newest event timestamp in the file
	lines       uint64
	linked      bool // sequences contiguous and linked inside the file
}

// rotated returns the sink's files except the newest (the one appended to), oldest first.
func (s *Sink) rotated() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return nil, errors.New("file sink: retention before Configure")
	}
	names, _, err := s.files()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	return names[:len(names)-1], nil
}

// summarize reads one rotated file.
func summarize(path, chainID string) (fileSummary, error) {
	out := fileSummary{path: path, onlyChain: true, linked: true}
	f, err := os.Open(path)
	if err != nil {
		return out, fsErr(fmt.Errorf("opening %s: %w", path, err))
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, rerr := r.ReadBytes('\n')
		if len(line) > 0 {
			var e chain.Event
			if err := json.Unmarshal(line, &e); err != nil || e.ChainID != chainID {
				out.onlyChain = false
				return out, nil
			}
			if out.lines > 0 && (e.Sequence != out.last.Sequence+1 || e.PreviousHash != out.last.Hash) {
				out.linked = false
			}
			if out.lines == 0 {
				out.first = e
			}
			out.last = e
			if e.Timestamp.After(out.newest) {
				out.newest = e.Timestamp
			}
			out.lines++
		}
		if errors.Is(rerr, io.EOF) {
			return out, nil
		}
		if rerr != nil {
			return out, fmt.Errorf("reading %s: %w", path, rerr)
		}
	}
}

// removable returns the oldest rotated files that retention may remove, in order: each holds
// only events of chainID, all older than cutoff and at or below upTo, contiguous with the file
// before it (or with the newest anchor, or the genesis, for the first).
func (s *Sink) removable(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) ([]fileSummary, error) {
	names, err := s.rotated()
	if err != nil {
		return nil, err
	}
	prev, err := s.newestAnchor(chainID)
	if err != nil {
		return nil, err
	}
	var out []fileSummary
	for _, p := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sum, err := summarize(p, chainID)
		if err != nil {
			return nil, err
		}
		if sum.lines == 0 {
			continue // an empty file holds nothing to keep or to anchor
		}
		if !sum.onlyChain || !sum.newest.Before(cutoff) || sum.last.Sequence > upTo {
			break
		}
		if !sum.linked {
			return nil, sink.Conflictf("file sink: retention of chain %s: %s is not one linked run of events; not removing it", chainID, p)
		}
		switch {
		case len(out) > 0 && (sum.first.Sequence != out[len(out)-1].last.Sequence+1 || sum.first.PreviousHash != out[len(out)-1].last.Hash):
			return nil, sink.Conflictf("file sink: retention of chain %s: %s does not continue the file before it; not removing it", chainID, p)
		case len(out) == 0 && prev.Found && sum.first.Sequence == prev.Sequence+1 && sum.first.PreviousHash != prev.Hash:
			return nil, sink.Conflictf("file sink: retention of chain %s: %s does not link to the retention anchor; not removing it", chainID, p)
		}
		out = append(out, sum)
	}
	return out, nil
}

// PlanRetention implements sink.Retainer: the last event of the newest rotated file that can go
// with every file before it.
func (s *Sink) PlanRetention(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) (sink.Head, error) {
	files, err := s.removable(ctx, chainID, cutoff, upTo)
	if err != nil || len(files) == 0 {
		return sink.Head{}, err
	}
	last := files[len(files)-1].last
	return sink.Head{Found: true, Sequence: last.Sequence, Hash: last.Hash}, nil
}

// Retain implements sink.Retainer: the anchor is appended and synced, then the rotated files
// whose events all lie at or below it are removed (oldest first) and the directory synced.
func (s *Sink) Retain(ctx context.Context, a sink.RetentionAnchor) (sink.RetentionResult, error) {
	var res sink.RetentionResult
	if a.ChainID == "" || a.Sequence == 0 || a.Hash == "" || a.Signature == "" {
		return res, sink.Permanentf("file sink: retention anchor %+v is incomplete", a)
	}
	if err := s.appendAnchor(a); err != nil {
		return res, err
	}
	names, err := s.rotated()
	if err != nil {
		return res, err
	}
	for _, p := range names {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sum, err := summarize(p, a.ChainID)
		if err != nil {
			return res, err
		}
		if !sum.onlyChain || (sum.lines > 0 && (sum.last.Sequence > a.Sequence || !sum.newest.Before(a.Cutoff))) {
			break
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fsErr(fmt.Errorf("removing %s: %w", p, err))
		}
		res.Events += sum.lines
		res.Blocks++
		s.log.Info("retention removed a rotated file", "file", p, "events", sum.lines, "last_sequence", sum.last.Sequence)
	}
	if res.Blocks > 0 {
		if err := s.syncDir(s.cfg.Dir); err != nil {
			return res, fmt.Errorf("syncing %s: %w", s.cfg.Dir, err)
		}
	}
	return res, nil
}

func (s *Sink) appendAnchor(a sink.RetentionAnchor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return errors.New("file sink: Retain before Configure")
	}
	as, err := readAnchors(filepath.Join(s.cfg.Dir, AnchorFile(s.cfg.Prefix)), a.ChainID)
	if err != nil {
		return err
	}
	for _, x := range as {
		if x == a {
			return nil // stored by an earlier attempt
		}
	}
	b, err := json.Marshal(anchorLine{ChainID: a.ChainID, Sequence: a.Sequence, Hash: a.Hash,
		Cutoff: a.Cutoff.UTC().Format(chain.TimestampLayout), Time: a.Time.UTC().Format(chain.TimestampLayout),
		KeyID: a.KeyID, Signature: a.Signature})
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.Dir, AnchorFile(s.cfg.Prefix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fsErr(fmt.Errorf("opening %s: %w", path, err))
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = s.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsErr(fmt.Errorf("writing %s: %w", path, err))
	}
	return nil
}

// ReadAnchors implements sink.Retainer.
func (s *Sink) ReadAnchors(_ context.Context, chainID string) ([]sink.RetentionAnchor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return nil, errors.New("file sink: ReadAnchors before Configure")
	}
	return readAnchors(filepath.Join(s.cfg.Dir, AnchorFile(s.cfg.Prefix)), chainID)
}

// newestAnchor returns the newest anchor of chainID as a head (Found false: none).
func (s *Sink) newestAnchor(chainID string) (sink.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anchorHead(chainID)
}

// anchorHead is newestAnchor for callers holding s.mu.
func (s *Sink) anchorHead(chainID string) (sink.Head, error) {
	as, err := readAnchors(filepath.Join(s.cfg.Dir, AnchorFile(s.cfg.Prefix)), chainID)
	if err != nil {
		return sink.Head{}, err
	}
	return sink.NewestAnchor(as), nil
}

// readAnchors reads the anchors of chainID from the anchor file at path (a torn or unreadable
// line is skipped: verification checks every anchor's signature anyway).
func readAnchors(path, chainID string) ([]sink.RetentionAnchor, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fsErr(fmt.Errorf("reading %s: %w", path, err))
	}
	defer f.Close()
	var out []sink.RetentionAnchor
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l anchorLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.ChainID != chainID {
			continue
		}
		cut, err1 := time.Parse(time.RFC3339Nano, l.Cutoff)
		at, err2 := time.Parse(time.RFC3339Nano, l.Time)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, sink.RetentionAnchor{ChainID: l.ChainID, Sequence: l.Sequence, Hash: l.Hash, Cutoff: cut.UTC(), Time: at.UTC(),
			KeyID: l.KeyID, Signature: l.Signature})
	}
	if err := sc.Err(); err != nil {
		return nil, fsErr(fmt.Errorf("reading %s: %w", path, err))
	}
	return out, nil
}
