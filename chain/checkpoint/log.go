package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Log is an append-only NDJSON file of checkpoints, each line fsynced before Append returns.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	last map[string]Checkpoint // newest checkpoint per chain
}

// OpenLog opens (creating it if needed) the log at path. A torn last line, left by a crash in
// the middle of a write, is cut off and reported in cut (its length in bytes); a damaged line
// before the last is an error, because that is not what a crash leaves.
func OpenLog(path string) (l *Log, cut int, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("opening checkpoint log: %w", err)
	}
	cps, good, err := read(f, path)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if end > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("cutting the torn tail of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, 0, err
		}
		cut = int(end - good)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	l = &Log{f: f, path: path, last: map[string]Checkpoint{}}
	for _, c := range cps {
		l.last[c.ChainID] = c
	}
	return l, cut, nil
}

// Last returns the newest checkpoint of chainID in the log.
func (l *Log) Last(chainID string) (Checkpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.last[chainID]
	return c, ok
}

// Append writes c as one line and fsyncs it.
func (l *Log) Append(c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", l.path, err)
	}
	l.last[c.ChainID] = c
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ReadFile returns every checkpoint in the log at path. A torn last line (no newline at the end
// and not valid JSON) is ignored; any other damage is an error naming its line.
func ReadFile(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cps, _, err := read(f, path)
	return cps, err
}

// read parses r and returns the checkpoints and the offset just past the last good line.
func read(r io.Reader, name string) ([]Checkpoint, int64, error) {
	br := bufio.NewReader(r)
	var (
		out  []Checkpoint
		good int64
		line int
	)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return out, good, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("reading %s: %w", name, err)
		}
		line++
		complete := err == nil // ends with a newline
		if len(bytes.TrimSpace(b)) == 0 {
			if complete {
				good += int64(len(b))
			}
			continue
		}
		var c Checkpoint
		if jerr := json.Unmarshal(b, &c); jerr != nil || c.ChainID == "" || c.Sequence == 0 || c.Hash == "" {
			if !complete {
				return out, good, nil // a torn last line: the crash cut it
			}
			if jerr == nil {
				jerr = errors.New("chainId, sequence and hash are required")
			}
			return nil, 0, fmt.Errorf("%s:%d: damaged checkpoint: %w", name, line, jerr)
		}
		if !complete {
			return out, good, nil // valid JSON but no newline: not known to be durable; cut it
		}
		out = append(out, c)
		good += int64(len(b))
	}
}
