// Package file is the bundled `file` sink: it appends audit events to rotating NDJSON files, one
// event per line, for archives and for SIEM shippers that tail files.
//
// Each line is the event's JSON (see appendLine) with context, metadata and timestamp exactly as
// hashed, so every hash can be recomputed from the files alone. Files are named
// PREFIX-YYYYMMDDTHHMMSS.ffffffZ.ndjson after the time they were started and sort in time
// order. A new file is started when the current one would grow past max_bytes, and, with
// rotate_every, when the wall clock enters a new rotate_every window (UTC-aligned, so 24h
// rotates at midnight UTC; checked on each write).
//
// Durability: only whole lines are written (a batch is built in memory and written with one
// write call per file), then, with the default fsync policy "batch", the file is fsynced once per
// Write; "always" writes and fsyncs each event on its own; "never" leaves flushing to the
// operating system (a machine crash can then lose acknowledged events). A line torn by a crash
// is cut off on the next start and logged.
//
// Writes are idempotent by (chainId, sequence): the head of each chain (last sequence and hash)
// is recovered on start from the newest file's last line, and, for other chains, on demand by
// scanning the files from newest to oldest; events at or below the head are skipped.
//
// The sink cannot answer queries.
//
// Configuration (JSON):
//
//	{"dir": "/var/lib/flowker-audit/archive", "prefix": "audit", "max_bytes": 104857600,
//	 "rotate_every": "24h", "fsync": "batch"}
package file

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// Fsync policies.
const (
	FsyncAlways = "always"
	FsyncBatch  = "batch"
	FsyncNever  = "never"
)

// Defaults.
const (
	DefaultPrefix   = "audit"
	DefaultMaxBytes = 100 << 20
)

// Config is the sink's configuration.
type Config struct {
	// Dir is the directory the files are written to (created when missing). Required.
	Dir string `json:"dir"`
	// Prefix starts every file name. Default "audit".
	Prefix string `json:"prefix"`
	// MaxBytes is the size past which a new file is started. Default 100 MiB.
	MaxBytes int64 `json:"max_bytes"`
	// RotateEvery starts a new file in every window of this length (a Go duration such as
	// "24h", or seconds); unset or 0 rotates by size only.
	RotateEvery pluginconfig.Duration `json:"rotate_every"`
	// Fsync is always, batch (the default) or never.
	Fsync string `json:"fsync"`
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseConfig decodes and checks a configuration, filling in defaults. Every problem is
// reported, each naming its field.
func ParseConfig(raw []byte) (Config, error) {
	c := Config{Prefix: DefaultPrefix, MaxBytes: DefaultMaxBytes, Fsync: FsyncBatch}
	var p pluginconfig.Problems
	pluginconfig.Decode(raw, &c, &p)
	if c.Dir == "" {
		p.Add("dir", "required")
	}
	if !prefixRE.MatchString(c.Prefix) {
		p.Add("prefix", "%q must start with a letter or digit and contain only letters, digits, '.', '_' and '-'", c.Prefix)
	}
	if c.MaxBytes <= 0 {
		p.Add("max_bytes", "must be positive, got %d", c.MaxBytes)
	}
	if d := c.RotateEvery.D(); d > 0 && d < time.Second {
		p.Add("rotate_every", "must be at least 1s, got %s", d)
	}
	switch c.Fsync {
	case FsyncAlways, FsyncBatch, FsyncNever:
	default:
		p.Add("fsync", "must be always, batch or never, got %q", c.Fsync)
	}
	return c, p.Err("file sink config")
}

// ValidateConfig checks a configuration without touching the file system.
func ValidateConfig(raw []byte) error {
	_, err := ParseConfig(raw)
	return err
}

// Sink is the file sink. Create it with New.
type Sink struct {
	log *slog.Logger
	// Seams for tests.
	now      func() time.Time
	syncFile func(*os.File) error
	syncDir  func(dir string) error

	mu         sync.Mutex
	configured bool
	cfg        Config
	cur        *os.File  // file being appended to; nil until the next Write opens one
	curSize    int64     // its size
	curStamp   time.Time // the time in its name
	newest     time.Time // the time in the newest file's name (zero when there is none)
	heads      map[string]sink.Head
	buf        []byte
	cpSeen     map[string]bool // forwarded checkpoints already in the checkpoint file (checkpoints.go)
}

// Interface guards.
var (
	_ sink.Sink      = (*Sink)(nil)
	_ sink.Validator = (*Sink)(nil)
)

// Options configures New.
type Options struct {
	// Logger receives the sink's log lines (nil discards them). The bundled plugin passes the
	// logger whose lines the sidecar re-logs.
	Logger *slog.Logger
}

// New returns an unconfigured file sink; call Configure before anything else.
func New(o Options) *Sink {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		log:      log,
		now:      time.Now,
		syncFile: (*os.File).Sync,
		syncDir:  syncDir,
		heads:    map[string]sink.Head{},
	}
}

// ValidateConfig implements sink.Validator.
func (s *Sink) ValidateConfig(raw []byte) error { return ValidateConfig(raw) }

// Capabilities implements sink.Sink.
func (s *Sink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true}, nil
}

// fsErr marks file system errors that retrying cannot fix as permanent.
func fsErr(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return sink.Permanent(err)
	}
	return err
}

// Configure implements sink.Sink: it checks the configuration, creates the directory, cuts a
// torn last line off the newest file and recovers that file's last event as its chain's head.
func (s *Sink) Configure(_ context.Context, raw []byte) error {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return sink.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeCurrent()
	s.cfg = cfg
	s.heads = map[string]sink.Head{}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return fsErr(fmt.Errorf("creating %s: %w", cfg.Dir, err))
	}
	if err := s.recoverNewest(); err != nil {
		return err
	}
	s.configured = true
	s.log.Info("file sink configured", "dir", cfg.Dir, "prefix", cfg.Prefix, "max_bytes", cfg.MaxBytes,
		"rotate_every", cfg.RotateEvery.String(), "fsync", cfg.Fsync)
	return nil
}

const stampLayout = "20060102T150405.000000Z"

func (s *Sink) fileName(stamp time.Time) string {
	return s.cfg.Prefix + "-" + stamp.UTC().Format(stampLayout) + ".ndjson"
}

// files lists the sink's files, oldest first.
func (s *Sink) files() ([]string, []time.Time, error) {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, nil, fsErr(fmt.Errorf("listing %s: %w", s.cfg.Dir, err))
	}
	type f struct {
		name  string
		stamp time.Time
	}
	var fs []f
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, s.cfg.Prefix+"-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		rest, ok = strings.CutSuffix(rest, ".ndjson")
		if !ok {
			continue
		}
		t, err := time.Parse(stampLayout, rest)
		if err != nil {
			continue
		}
		fs = append(fs, f{name, t})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].stamp.Before(fs[j].stamp) })
	names, stamps := make([]string, len(fs)), make([]time.Time, len(fs))
	for i, x := range fs {
		names[i], stamps[i] = filepath.Join(s.cfg.Dir, x.name), x.stamp
	}
	return names, stamps, nil
}

// recoverNewest truncates a torn last line of the newest file and learns the head of the
// chain of its last complete line.
func (s *Sink) recoverNewest() error {
	names, stamps, err := s.files()
	if err != nil {
		return err
	}
	s.newest = time.Time{}
	if len(names) == 0 {
		return nil
	}
	path := names[len(names)-1]
	s.newest = stamps[len(stamps)-1]
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fsErr(fmt.Errorf("opening %s: %w", path, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	end, err := lastLineEnd(f, st.Size())
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if end < st.Size() {
		if err := f.Truncate(end); err != nil {
			return fsErr(fmt.Errorf("truncating the torn last line of %s: %w", path, err))
		}
		if s.cfg.Fsync != FsyncNever {
			if err := s.syncFile(f); err != nil {
				return fmt.Errorf("syncing %s: %w", path, err)
			}
		}
		s.log.Warn("cut a torn last line off the newest file (the writer crashed in the middle of a write)",
			"file", path, "kept_bytes", end, "cut_bytes", st.Size()-end)
	}
	// The newest file's last line is the most recent event of its chain.
	for pos := end; pos > 0; {
		line, start, err := lineBefore(f, pos)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		h, err := parseLineHead(line)
		if err == nil {
			s.heads[h.ChainID] = sink.Head{Found: true, Sequence: h.Sequence, Hash: h.Hash}
			return nil
		}
		s.log.Error("skipping an unreadable line of the newest file", "file", path, "offset", start, "error", err)
		pos = start
	}
	return nil
}

const chunk = 64 << 10

// lastLineEnd returns the offset just past the last '\n' of the first size bytes of f (0 when
// there is none).
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// lineBefore returns the line (without '\n') that ends just before offset end (end is just past
// its '\n') and the offset where it starts.
func lineBefore(f *os.File, end int64) ([]byte, int64, error) {
	start, err := lastLineEnd(f, end-1)
	if err != nil {
		return nil, 0, err
	}
	line := make([]byte, end-1-start)
	if _, err := f.ReadAt(line, start); err != nil {
		return nil, 0, err
	}
	return line, start, nil
}

// head returns the stored head of chainID, scanning the files (newest first) when it is not
// known yet. Callers hold s.mu.
func (s *Sink) head(chainID string) (sink.Head, error) {
	if h, ok := s.heads[chainID]; ok {
		return h, nil
	}
	names, _, err := s.files()
	if err != nil {
		return sink.Head{}, err
	}
	var h sink.Head
	for i := len(names) - 1; i >= 0 && !h.Found; i-- {
		if h, err = s.scanFile(names[i], chainID); err != nil {
			return sink.Head{}, err
		}
	}
	if !h.Found { // retention removed every file of the chain: the newest anchor is its head
		if h, err = s.anchorHead(chainID); err != nil {
			return sink.Head{}, err
		}
	}
	s.heads[chainID] = h
	return h, nil
}

// scanFile returns the last event of chainID in one file.
func (s *Sink) scanFile(path, chainID string) (sink.Head, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return sink.Head{}, nil // removed meanwhile (archived by the operator)
		}
		return sink.Head{}, fsErr(fmt.Errorf("opening %s: %w", path, err))
	}
	defer f.Close()
	var h sink.Head
	r := bufio.NewReaderSize(f, 1<<20)
	// Only lines of this chain are decoded: chain ids are plain ASCII, so AppendJSON writes
	// them unescaped and this text is in every line of the chain.
	needle := []byte(`"chainId":"` + chainID + `"`)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' && bytes.Contains(line, needle) {
			if lh, perr := parseLineHead(line); perr == nil && lh.ChainID == chainID {
				h = sink.Head{Found: true, Sequence: lh.Sequence, Hash: lh.Hash}
			}
		}
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return sink.Head{}, fmt.Errorf("reading %s: %w", path, err)
		}
	}
}

// Head implements sink.Sink.
func (s *Sink) Head(_ context.Context, chainID string) (sink.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return sink.Head{}, errors.New("file sink: Head before Configure")
	}
	return s.head(chainID)
}

// Write implements sink.Sink.
func (s *Sink) Write(ctx context.Context, events []chain.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return errors.New("file sink: Write before Configure")
	}
	now := s.now()
	pending := map[string]sink.Head{}
	buf := s.buf[:0]
	defer func() { s.buf = buf[:0] }()
	for i := range events {
		e := &events[i]
		h, ok := pending[e.ChainID]
		if !ok {
			var err error
			if h, err = s.head(e.ChainID); err != nil {
				return err
			}
		}
		if h.Found && e.Sequence == h.Sequence && e.Hash != h.Hash {
			return sink.Conflictf("file sink: chain %s sequence %d is already stored with hash %s; the batch has %s", e.ChainID, e.Sequence, h.Hash, e.Hash)
		}
		if h.Found && e.Sequence <= h.Sequence {
			continue // already stored (only the head's hash is compared: older lines are not read back)
		}
		lineStart := len(buf)
		var err error
		if buf, err = appendLine(buf, e); err != nil {
			return err
		}
		if s.needRotate(now, int64(lineStart), int64(len(buf)-lineStart)) {
			if err := s.flush(buf[:lineStart], pending); err != nil {
				return err
			}
			clear(pending)
			buf = append(buf[:0], buf[lineStart:]...)
			if err := s.rotate(now); err != nil {
				return err
			}
		}
		pending[e.ChainID] = sink.Head{Found: true, Sequence: e.Sequence, Hash: e.Hash}
		if s.cfg.Fsync == FsyncAlways {
			if err := s.flush(buf, pending); err != nil {
				return err
			}
			clear(pending)
			buf = buf[:0]
		}
	}
	return s.flush(buf, pending)
}

// needRotate reports whether a line of lineLen bytes, following buffered bytes not yet written,
// must go to a new file. It opens the newest file for appending when there is no current file.
func (s *Sink) needRotate(now time.Time, buffered, lineLen int64) bool {
	if s.cur == nil {
		if err := s.openNewest(); err != nil || s.cur == nil {
			return true
		}
	}
	// Only a later window rotates, so a clock that went back cannot cause a file per line.
	if every := s.cfg.RotateEvery.D(); every > 0 && now.Truncate(every).After(s.curStamp.Truncate(every)) {
		return true
	}
	// A line longer than max_bytes gets a file of its own.
	before := s.curSize + buffered
	return before > 0 && before+lineLen > s.cfg.MaxBytes
}

// openNewest opens the newest existing file for appending (s.cur stays nil when there is
// none).
func (s *Sink) openNewest() error {
	names, stamps, err := s.files()
	if err != nil || len(names) == 0 {
		return err
	}
	path := names[len(names)-1]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.cur, s.curSize, s.curStamp = f, st.Size(), stamps[len(stamps)-1]
	s.newest = s.curStamp
	return nil
}

// rotate closes the current file and creates the next one. Its name's time is now, or just
// after the newest existing file's when the clock is behind it, so names always sort in order.
func (s *Sink) rotate(now time.Time) error {
	if s.cur != nil {
		if s.cfg.Fsync != FsyncNever {
			if err := s.syncFile(s.cur); err != nil {
				return s.fail(fmt.Errorf("syncing %s: %w", s.cur.Name(), err))
			}
		}
		s.closeCurrent()
	}
	stamp := now.UTC().Truncate(time.Microsecond)
	if !stamp.After(s.newest) {
		stamp = s.newest.Add(time.Microsecond)
	}
	path := filepath.Join(s.cfg.Dir, s.fileName(stamp))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fsErr(fmt.Errorf("creating %s: %w", path, err))
	}
	if s.cfg.Fsync != FsyncNever {
		if err := s.syncDir(s.cfg.Dir); err != nil {
			f.Close()
			return fmt.Errorf("syncing %s: %w", s.cfg.Dir, err)
		}
	}
	s.cur, s.curSize, s.curStamp, s.newest = f, 0, stamp, stamp
	s.log.Info("started a new file", "file", path)
	return nil
}

// flush writes buf (whole lines) to the current file in one call, syncs it unless the policy
// is never, and then records the heads the lines carry.
func (s *Sink) flush(buf []byte, pending map[string]sink.Head) error {
	if len(buf) == 0 {
		return nil
	}
	if s.cur == nil {
		if err := s.rotate(s.now()); err != nil {
			return err
		}
	}
	if _, err := s.cur.Write(buf); err != nil {
		// Cut what a short write left, so the file ends with a whole line.
		_ = s.cur.Truncate(s.curSize)
		return s.fail(fsErr(fmt.Errorf("writing %s: %w", s.cur.Name(), err)))
	}
	s.curSize += int64(len(buf))
	if s.cfg.Fsync != FsyncNever {
		if err := s.syncFile(s.cur); err != nil {
			return s.fail(fmt.Errorf("syncing %s: %w", s.cur.Name(), err))
		}
	}
	for id, h := range pending {
		s.heads[id] = h
	}
	return nil
}

// fail forgets the current file and every known head after an I/O error: what is on disk is no
// longer known, so the next call recovers from the files (cutting a torn line) and Head reports
// what they really hold.
func (s *Sink) fail(err error) error {
	s.closeCurrent()
	s.heads = map[string]sink.Head{}
	if rerr := s.recoverNewest(); rerr != nil {
		s.log.Error("recovering after a failed write", "error", rerr)
	}
	return err
}

func (s *Sink) closeCurrent() {
	if s.cur != nil {
		if err := s.cur.Close(); err != nil {
			s.log.Warn("closing file", "file", s.cur.Name(), "error", err)
		}
		s.cur = nil
	}
}

// Close implements sink.Sink.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	var err error
	if s.cfg.Fsync != FsyncNever {
		err = s.syncFile(s.cur)
	}
	s.closeCurrent()
	if err != nil {
		return fmt.Errorf("syncing on close: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
