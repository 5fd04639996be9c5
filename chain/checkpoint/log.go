package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Log is an append-only NDJSON file of checkpoints, each line fsynced before Append returns.
// The file is opened in append mode, so copy-and-truncate rotation by a log shipper is safe.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	path string
	last map[string]Checkpoint // last appended checkpoint per chain signed by the log's key
}

// OpenInfo says what OpenLog found.
type OpenInfo struct {
	Cut          int // bytes of a torn last line cut off (a crash in the middle of a write)
	AddedNewline bool
	// Foreign counts checkpoints not signed by the given key (another key, or a bad signature).
	// They are kept in the file but never taken as the newest checkpoint.
	Foreign int
	Existed bool // the file existed before OpenLog
	Count   int  // checkpoints read from it
}

// OpenLog opens (creating it if needed) the log at path for appending checkpoints signed by pub.
// A torn last line, left by a crash in the middle of a write, is cut off; a complete last line
// that only lacks its newline gets one. A damaged line before the last is an error, because that
// is not what a crash leaves.
func OpenLog(path string, pub ed25519.PublicKey) (*Log, OpenInfo, error) {
	var info OpenInfo
	if _, err := os.Stat(path); err == nil {
		info.Existed = true
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, info, fmt.Errorf("opening checkpoint log: %w", err)
	}
	fail := func(err error) (*Log, OpenInfo, error) {
		f.Close()
		return nil, info, err
	}
	cps, good, missingNL, err := read(f, path)
	if err != nil {
		return fail(err)
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fail(err)
	}
	if end > good {
		if err := f.Truncate(good); err != nil {
			return fail(fmt.Errorf("cutting the torn tail of %s: %w", path, err))
		}
		info.Cut = int(end - good)
	}
	if missingNL {
		if _, err := f.Write([]byte{'\n'}); err != nil {
			return fail(fmt.Errorf("completing the last line of %s: %w", path, err))
		}
		info.AddedNewline = true
	}
	if info.Cut > 0 || info.AddedNewline {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	info.Count = len(cps)
	l := &Log{f: f, path: path, last: map[string]Checkpoint{}}
	for _, c := range cps {
		if c.Verify(pub) != nil {
			info.Foreign++
			continue
		}
		l.last[c.ChainID] = c // file order is append order
	}
	return l, info, nil
}

// Last returns the last checkpoint of chainID appended with the log's key.
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
	if err := appendLine(l.f, b); err != nil {
		return fmt.Errorf("writing %s: %w", l.path, err)
	}
	l.last[c.ChainID] = c
	return nil
}

// lineFile is what appendLine needs of an *os.File opened with O_APPEND.
type lineFile interface {
	io.Writer
	io.Seeker
	Sync() error
	Truncate(size int64) error
}

// appendLine writes b at the end of f and syncs it. On failure it takes back whatever part of b
// was written: a partial line followed by the next complete one would read as a damaged line in
// the middle of the log.
func appendLine(f lineFile, b []byte) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if terr := f.Truncate(end); terr != nil {
			return fmt.Errorf("%w (and removing the partial line: %v)", err, terr)
		}
		return err
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ReadFile returns every checkpoint in the log at path. A torn last line is ignored (a complete
// last line without its newline is not torn); any other damage is an error naming its line.
// Signatures are not checked here (see Checker).
func ReadFile(path string) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cps, _, _, err := read(f, path)
	return cps, err
}

// read parses r. It returns the checkpoints, the offset just past the last good line, and
// whether that last line lacks its newline (complete, but the write stopped before it).
func read(r io.Reader, name string) (cps []Checkpoint, good int64, missingNL bool, err error) {
	br := bufio.NewReader(r)
	line := 0
	for {
		b, rerr := br.ReadBytes('\n')
		if len(b) == 0 && errors.Is(rerr, io.EOF) {
			return cps, good, false, nil
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, 0, false, fmt.Errorf("reading %s: %w", name, rerr)
		}
		line++
		complete := rerr == nil // ends with a newline
		if len(bytes.TrimSpace(b)) == 0 {
			if complete {
				good += int64(len(b))
			}
			continue
		}
		var c Checkpoint
		if jerr := json.Unmarshal(b, &c); jerr != nil || c.ChainID == "" || c.Sequence == 0 || c.Hash == "" {
			if !complete {
				return cps, good, false, nil // a torn last line: the crash cut it
			}
			if jerr == nil {
				jerr = errors.New("chainId, sequence and hash are required")
			}
			return nil, 0, false, fmt.Errorf("%s:%d: damaged checkpoint: %w", name, line, jerr)
		}
		cps = append(cps, c)
		good += int64(len(b))
		if !complete {
			return cps, good, true, nil
		}
	}
}
