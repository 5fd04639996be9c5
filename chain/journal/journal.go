// Package journal is the durable local log between the proxy and the sinks.
//
// Events are sequenced, hash-linked and appended by a single writer goroutine (so the chain never
// forks) and made durable with group commit: every append request that arrives while a commit is
// in flight joins the next transaction, and one fsync covers them all. Append returns only after
// the event is durable, so a client whose response waited for it has an audit record even if the
// process dies a moment later.
//
// Storage is go.etcd.io/bbolt: transactions are atomic, so a crash can never leave half a record;
// each record also carries a CRC-32C, and recovery at Open re-checks the tail (checksums, hashes,
// links) and cuts anything damaged, reporting it. Each sink has a persisted delivery cursor;
// events every sink acknowledged are compacted. A size bound keeps the journal from filling the
// disk: at the bound, appends fail with ErrFull and the proxy refuses audited requests
// (fail_closed) or counts the loss (fail_open).
package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Errors returned by Append and Accepting.
var (
	ErrFull      = errors.New("journal is full (journal.max_bytes reached; sinks are not draining it)")
	ErrFailed    = errors.New("journal cannot write")
	ErrClosed    = errors.New("journal is closed")
	ErrDuplicate = errors.New("an event with this once-key was already journaled")
)

var (
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	bucketCursors = []byte("cursors")
	bucketOnce    = []byte("once")
	bucketWatch   = []byte("watch")

	keyChainID = []byte("chain_id")
	keyFormat  = []byte("format")
	keyHeadSeq = []byte("head_seq")
	keyHeadHsh = []byte("head_hash")
	keyHeadTS  = []byte("head_ts")
	keyProbe   = []byte("probe")
)

const formatVersion = "1"

// Draft is an event before sequencing: the journal assigns chainId, sequence, timestamp,
// previousHash and hash.
type Draft struct {
	EventID      string
	EventType    string
	Action       string
	Result       string
	ResourceID   string
	ResourceType string
	Actor        chain.Actor
	// Context and Metadata must be canonical jsonb text (package chain/jsonb); nil means {}.
	Context  []byte
	Metadata []byte
	// Once, when set, makes the append happen at most once per key, ever: a second Append with
	// the same key returns ErrDuplicate and journals nothing (decided atomically by the writer).
	Once string
	// Watch adds an execution to the persisted watch list in the same transaction.
	Watch *Watch
	// Unwatch removes an execution from the watch list in the same transaction.
	Unwatch string
}

// Watch is an execution whose outcome the sidecar still has to learn.
type Watch struct {
	ExecutionID string    `json:"executionId"`
	WorkflowID  string    `json:"workflowId"`
	Since       time.Time `json:"since"`
}

// Options configure Open.
type Options struct {
	// Path is the bbolt file (created if missing).
	Path string
	// ChainID names the chain; empty means the one persisted in the file, or a new one.
	ChainID string
	// MaxBytes bounds the retained event bytes (default 1 GiB).
	MaxBytes int64
	// NoSync turns fsync off (tests and benchmarks only: acknowledged events can then be lost).
	NoSync bool
	// MaxBatch caps the events of one group commit (default 1024).
	MaxBatch int
	// TailCheck is how many records at the tail recovery re-verifies (default 4096).
	TailCheck int
	// ProbeInterval is how often a failed journal retries writing (default 2s).
	ProbeInterval time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
	Metrics       *Metrics
}

// Recovery says what Open found.
type Recovery struct {
	ChainID   string
	Fresh     bool   // a new journal (or a new chain)
	Last      uint64 // last good sequence after recovery
	Retained  uint64 // events retained
	Checked   int    // tail records re-verified
	CutFrom   uint64 // first sequence cut (0: nothing cut)
	CutCount  int
	CutReason string
}

type head struct {
	seq  uint64
	hash string
	ts   int64 // Unix µs
}

// Journal is the durable log. It is safe for concurrent use.
type Journal struct {
	db      *bolt.DB
	opts    Options
	chainID string
	log     *slog.Logger
	m       *Metrics

	reqs chan *request
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	head     head
	first    uint64 // lowest retained sequence (0: none)
	bytes    int64
	entries  int64
	failed   error
	notify   chan struct{} // closed and replaced on every commit that appended
	probing  bool
	closed   atomic.Bool
	submitMu sync.RWMutex // see submit
	closeErr error
	once     sync.Once
}

type reqKind int

const (
	kindAppend reqKind = iota
	kindAck
	kindCompact
	kindRebase
	kindPruneOnce
)

type request struct {
	kind  reqKind
	draft *Draft
	name  string
	seq   uint64
	hash  string
	ts    int64
	start time.Time
	done  chan result
}

type result struct {
	event chain.Event
	n     int
	err   error
}

// Open opens (or creates) the journal and recovers its tail.
func Open(opts Options) (*Journal, *Recovery, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.TailCheck <= 0 {
		opts.TailCheck = 4096
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("creating journal directory: %w", err)
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout:        2 * time.Second,
		NoSync:         opts.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, fmt.Errorf("opening journal %s: locked by another process (is another flowker-audit running on this data_dir?)", opts.Path)
		}
		return nil, nil, fmt.Errorf("opening journal %s: %w", opts.Path, err)
	}
	j := &Journal{
		db: db, opts: opts, log: opts.Logger, m: opts.Metrics,
		reqs: make(chan *request, 8192), stop: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}),
	}
	rec, err := j.recover()
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	j.m.MaxBytes.Set(float64(opts.MaxBytes))
	j.publishGauges()
	go j.run()
	return j, rec, nil
}

var chainIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// NewChainID returns a fresh chain id: the host name (sanitised) and 8 random hex digits.
func NewChainID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return '-'
	}, host)
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "flowker-audit"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func readU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (j *Journal) recover() (*Recovery, error) {
	rec := &Recovery{}
	err := j.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketEvents, bucketCursors, bucketOnce, bucketWatch} {
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
		j.head = head{seq: readU64(meta.Get(keyHeadSeq)), hash: string(meta.Get(keyHeadHsh)), ts: int64(readU64(meta.Get(keyHeadTS)))}
		return j.checkTail(tx, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("recovering journal: %w", err)
	}
	rec.ChainID, rec.Last = j.chainID, j.head.seq
	rec.Retained = uint64(j.entries)
	if rec.CutCount > 0 {
		j.m.RecoveryCut.Add(float64(rec.CutCount))
		j.m.EventsLost.WithLabelValues("journal_corrupt").Add(float64(rec.CutCount))
		j.log.Error("journal tail was damaged and has been cut; the chain resumes from the last good record",
			"first_cut_sequence", rec.CutFrom, "records_cut", rec.CutCount, "reason", rec.CutReason, "resumes_after", rec.Last)
	}
	return rec, nil
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

// ChainID is the chain this journal appends to.
func (j *Journal) ChainID() string { return j.chainID }

// Last returns the highest sequence appended so far.
func (j *Journal) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head.seq
}

// Head returns the last sequence and hash.
func (j *Journal) Head() (uint64, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head.seq, j.head.hash
}

// reserve is head-room kept below MaxBytes so that one large event still fits when Accepting said yes.
const reserve = 512 << 10

// Accepting returns nil when an append can be expected to succeed, else ErrFull or an error
// wrapping ErrFailed. The proxy checks it before forwarding an audited request (fail_closed).
func (j *Journal) Accepting() error {
	if j.closed.Load() {
		return ErrClosed
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return fmt.Errorf("%w: %v", ErrFailed, j.failed)
	}
	if j.bytes+reserve > j.opts.MaxBytes {
		return ErrFull
	}
	return nil
}

// Append sequences d, appends it and returns the event once it is durable. It returns
// ErrDuplicate (and journals nothing) when d.Once was used before.
func (j *Journal) Append(ctx context.Context, d Draft) (chain.Event, error) {
	if j.closed.Load() {
		return chain.Event{}, ErrClosed
	}
	r := &request{kind: kindAppend, draft: &d, start: time.Now(), done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return chain.Event{}, err
	}
	// Once submitted the outcome is awaited even if ctx ends: the caller must know whether the
	// event exists.
	res := <-r.done
	if res.err == nil {
		j.m.AppendDuration.Observe(time.Since(r.start).Seconds())
	}
	return res.event, res.err
}

// submit queues r for the writer. Close takes submitMu exclusively before it stops the writer,
// so a request is either queued while the writer still runs (and is then always answered: the
// writer drains the queue before it stops) or refused with ErrClosed, never left unanswered.
func (j *Journal) submit(ctx context.Context, r *request) error {
	j.submitMu.RLock()
	defer j.submitMu.RUnlock()
	if j.closed.Load() {
		return ErrClosed
	}
	select {
	case j.reqs <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to append to the journal: %w", ctx.Err())
	}
}

// Ack durably records that sink name stored every event up to seq.
func (j *Journal) Ack(ctx context.Context, name string, seq uint64) error {
	r := &request{kind: kindAck, name: name, seq: seq, done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return err
	}
	select {
	case res := <-r.done:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Rebase continues the chain after an event stored elsewhere (a sink's head) that is ahead of the
// journal, e.g. after the journal file was lost or its tail cut, so that sequence numbers are never
// reused. It fails unless seq is above the journal's last sequence.
func (j *Journal) Rebase(ctx context.Context, seq uint64, hash string, ts time.Time) error {
	r := &request{kind: kindRebase, seq: seq, hash: hash, ts: ts.UnixMicro(), done: make(chan result, 1)}
	if err := j.submit(ctx, r); err != nil {
		return err
	}
	res := <-r.done
	return res.err
}

// Cursor returns the last sequence sink name acknowledged (0: none).
func (j *Journal) Cursor(name string) (uint64, error) {
	var v uint64
	err := j.db.View(func(tx *bolt.Tx) error {
		v = readU64(tx.Bucket(bucketCursors).Get([]byte(name)))
		return nil
	})
	return v, err
}

// Cursors returns every persisted sink cursor.
func (j *Journal) Cursors() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
			out[string(k)] = readU64(v)
			return nil
		})
	})
	return out, err
}

// Wait blocks until an event with a sequence above after exists, or ctx ends.
func (j *Journal) Wait(ctx context.Context, after uint64) error {
	for {
		j.mu.Lock()
		last, ch := j.head.seq, j.notify
		j.mu.Unlock()
		if last > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-j.stop:
			return ErrClosed
		}
	}
}

// Read returns up to max events with sequence >= from, in order, stopping once maxBytes of
// records were read (at least one event is returned when any exists). Events compacted away are
// skipped: the first returned sequence may be above from.
func (j *Journal) Read(ctx context.Context, from uint64, max int, maxBytes int) ([]chain.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []chain.Event
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		size := 0
		for k, v := c.Seek(u64(from)); k != nil && len(out) < max; k, v = c.Next() {
			if len(out) > 0 && size+len(v) > maxBytes {
				break
			}
			e, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("reading sequence %d: %w", readU64(k), err)
			}
			out = append(out, e)
			size += len(v)
		}
		return nil
	})
	return out, err
}

// ReadRange calls fn for each retained event with from <= sequence <= to (to 0: no bound).
func (j *Journal) ReadRange(ctx context.Context, from, to uint64, fn func(*chain.Event) error) error {
	next := from
	for {
		batch, err := j.Read(ctx, next, 1024, 8<<20)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		for i := range batch {
			if to != 0 && batch[i].Sequence > to {
				return nil
			}
			if err := fn(&batch[i]); err != nil {
				return err
			}
		}
		next = batch[len(batch)-1].Sequence + 1
	}
}

// AppendedAt returns the timestamp of the event with sequence seq, if retained.
func (j *Journal) AppendedAt(seq uint64) (time.Time, bool) {
	var ts time.Time
	var ok bool
	_ = j.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketEvents).Get(u64(seq)); v != nil {
			ts, ok = recordTimestamp(v)
		}
		return nil
	})
	return ts, ok
}

// Watches returns the persisted watch list.
func (j *Journal) Watches() ([]Watch, error) {
	var out []Watch
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWatch).ForEach(func(k, v []byte) error {
			var w Watch
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("watch entry %q: %w", k, err)
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}

// Unwatch removes an execution from the watch list (when its outcome can no longer be learned).
func (j *Journal) Unwatch(executionID string) error {
	return j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketWatch).Delete([]byte(executionID)) })
}

// Compact removes events at or below upTo (the lowest cursor of all sinks), in chunks, and
// returns how many were removed.
func (j *Journal) Compact(ctx context.Context, upTo uint64) (int, error) {
	return j.inChunks(ctx, request{kind: kindCompact, seq: upTo}, compactChunkSize)
}

// Chunk sizes of the maintenance requests: each is one writer transaction, so that appends
// never wait behind a long one.
const (
	compactChunkSize   = 4096
	pruneOnceChunkSize = 10000
)

// inChunks submits copies of r until one handles less than a full chunk, and returns the total.
func (j *Journal) inChunks(ctx context.Context, r request, chunk int) (int, error) {
	total := 0
	for {
		c := r
		c.done = make(chan result, 1)
		if err := j.submit(ctx, &c); err != nil {
			return total, err
		}
		res := <-c.done
		total += res.n
		if res.err != nil || res.n < chunk {
			return total, res.err
		}
	}
}

// PruneOnce forgets Once keys written before `before`, so that the key set does not grow
// forever: after that, an Append with such a key is no longer refused as a duplicate. It returns
// the number of keys removed.
func (j *Journal) PruneOnce(ctx context.Context, before time.Time) (int, error) {
	return j.inChunks(ctx, request{kind: kindPruneOnce, ts: before.Unix()}, pruneOnceChunkSize)
}

// releaseOnce deletes the Once keys whose event is one of the cut records (keys: sequences).
func releaseOnce(once *bolt.Bucket, cut [][]byte) error {
	seqs := map[uint64]bool{}
	for _, k := range cut {
		seqs[readU64(k)] = true
	}
	var dead [][]byte
	c := once.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) >= 8 && seqs[readU64(v[:8])] {
			dead = append(dead, append([]byte(nil), k...))
		}
	}
	for _, k := range dead {
		if err := once.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneOnceChunk deletes up to limit Once keys written before the unix time cutoff. Keys from
// before timestamps were recorded (an 8-byte value) are kept.
func pruneOnceChunk(once *bolt.Bucket, cutoff int64, limit int) (int, error) {
	var dead [][]byte
	c := once.Cursor()
	for k, v := c.First(); k != nil && len(dead) < limit; k, v = c.Next() {
		if len(v) == 16 && int64(readU64(v[8:])) < cutoff {
			dead = append(dead, append([]byte(nil), k...))
		}
	}
	for _, k := range dead { // deleted after the walk: deleting under a bbolt cursor can skip keys
		if err := once.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}

// Stats reports retained events and bytes.
func (j *Journal) Stats() (entries int64, bytes int64, first uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.entries, j.bytes, j.first
}

// Close stops the writer after the requests already submitted and closes the file.
func (j *Journal) Close() error {
	j.once.Do(func() {
		j.submitMu.Lock() // waits for submissions in progress; none can start after it
		j.closed.Store(true)
		j.submitMu.Unlock()
		close(j.stop)
		<-j.done
		j.closeErr = j.db.Close()
	})
	return j.closeErr
}

func (j *Journal) publishGauges() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.m.Bytes.Set(float64(j.bytes))
	j.m.Entries.Set(float64(j.entries))
	j.m.ChainSequence.WithLabelValues(j.chainID).Set(float64(j.head.seq))
	if j.failed == nil && j.bytes+reserve <= j.opts.MaxBytes {
		j.m.Writable.Set(1)
	} else {
		j.m.Writable.Set(0)
	}
}

// run is the single writer: it batches queued requests into one transaction (group commit).
func (j *Journal) run() {
	defer close(j.done)
	batch := make([]*request, 0, j.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-j.reqs:
			batch = append(batch, r)
		case <-j.stop:
			// Serve what was submitted before Close, in full batches, then stop.
			for {
				batch = batch[:0]
			drain:
				for len(batch) < j.opts.MaxBatch {
					select {
					case r := <-j.reqs:
						batch = append(batch, r)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					return
				}
				j.commit(batch)
			}
		}
		// Let goroutines that are about to append run first: with one P (GOMAXPROCS=1, e.g. a
		// one-CPU container limit) the writer would otherwise commit each event alone, because
		// request goroutines only get to enqueue while it is blocked in fsync.
		runtime.Gosched()
	fill:
		for len(batch) < j.opts.MaxBatch {
			select {
			case r := <-j.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		j.commit(batch)
	}
}

func (j *Journal) commit(batch []*request) {
	start := time.Now()
	j.mu.Lock()
	h, size := j.head, j.bytes
	j.mu.Unlock()

	results := make([]result, len(batch))
	onceInBatch := map[string]bool{}
	appended, added := 0, int64(0)
	compacted, removed := 0, int64(0)
	var firstNew, firstLeft uint64

	tx, err := j.db.Begin(true)
	if err == nil {
		events := tx.Bucket(bucketEvents)
		events.FillPercent = 1.0 // append-only keys
		once, watch, cursors := tx.Bucket(bucketOnce), tx.Bucket(bucketWatch), tx.Bucket(bucketCursors)
		for i, r := range batch {
			switch r.kind {
			case kindAppend:
				results[i] = j.stage(r.draft, &h, &size, events, once, watch, onceInBatch)
				if results[i].err == nil {
					appended++
					added += int64(results[i].n)
					if firstNew == 0 {
						firstNew = results[i].event.Sequence
					}
				}
			case kindAck:
				if perr := cursors.Put([]byte(r.name), u64(r.seq)); perr != nil {
					results[i].err = perr
				}
			case kindRebase:
				if r.seq <= h.seq {
					results[i].err = fmt.Errorf("cannot rebase to sequence %d: the journal is already at %d", r.seq, h.seq)
				} else {
					h = head{seq: r.seq, hash: r.hash, ts: r.ts}
				}
			case kindPruneOnce:
				n, perr := pruneOnceChunk(once, r.ts, pruneOnceChunkSize)
				results[i] = result{n: n, err: perr}
			case kindCompact:
				n, freed, cerr := compactChunk(events, r.seq, compactChunkSize)
				results[i] = result{n: n, err: cerr}
				compacted += n
				removed += freed
				size -= freed
			}
		}
		if compacted > 0 {
			// The first retained event, read rather than derived: after a rebase the retained
			// sequences need not be contiguous with the head.
			if k, _ := events.Cursor().First(); k != nil {
				firstLeft = readU64(k)
			}
		}
		if err == nil {
			err = putHead(tx.Bucket(bucketMeta), h)
		}
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrFailed, err)
		for i := range results {
			if results[i].err == nil {
				results[i] = result{err: err}
			}
		}
		j.mu.Lock()
		j.failed = err
		startProbe := !j.probing
		j.probing = true
		j.mu.Unlock()
		j.log.Error("journal commit failed; audited requests are refused (fail_closed) or counted lost (fail_open) until it recovers", "err", err)
		if startProbe {
			go j.probe()
		}
	} else {
		j.mu.Lock()
		j.head, j.bytes = h, size
		j.entries += int64(appended) - int64(compacted)
		if appended > 0 && j.first == 0 {
			j.first = firstNew
		}
		if compacted > 0 {
			j.first = firstLeft // 0 when nothing is retained
		}
		if appended > 0 {
			close(j.notify)
			j.notify = make(chan struct{})
		}
		j.mu.Unlock()
		if !j.opts.NoSync {
			j.m.Fsyncs.Inc()
		}
		j.m.CommitDuration.Observe(time.Since(start).Seconds())
		if appended > 0 {
			j.m.GroupSize.Observe(float64(appended))
			j.m.AppendedEvents.Add(float64(appended))
			j.m.AppendedBytes.Add(float64(added))
		}
		if compacted > 0 {
			j.m.Compacted.Add(float64(compacted))
		}
		j.publishGauges()
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// stage sequences and stages one draft inside the commit transaction.
func (j *Journal) stage(d *Draft, h *head, size *int64, events, once, watch *bolt.Bucket, onceInBatch map[string]bool) result {
	if d.Once != "" {
		if onceInBatch[d.Once] || once.Get([]byte(d.Once)) != nil {
			return result{err: ErrDuplicate}
		}
	}
	now := j.opts.Now().UnixMicro()
	if now <= h.ts {
		now = h.ts + 1 // timestamps strictly increase with the sequence
	}
	e := chain.Event{
		EventID: d.EventID, EventType: d.EventType, Action: d.Action, Result: d.Result,
		ResourceID: d.ResourceID, ResourceType: d.ResourceType, Actor: d.Actor,
		Context: orEmpty(d.Context), Metadata: orEmpty(d.Metadata),
		Timestamp: time.UnixMicro(now).UTC(), PreviousHash: h.hash,
		ChainID: j.chainID, Sequence: h.seq + 1,
	}
	e.Seal()
	rec := appendRecord(nil, &e)
	if *size+int64(len(rec)) > j.opts.MaxBytes {
		return result{err: ErrFull}
	}
	if err := events.Put(u64(e.Sequence), rec); err != nil {
		return result{err: err}
	}
	if d.Once != "" {
		// The key's sequence and when it was written (for PruneOnce).
		if err := once.Put([]byte(d.Once), append(u64(e.Sequence), u64(uint64(now/1e6))...)); err != nil {
			return result{err: err}
		}
		onceInBatch[d.Once] = true
	}
	if d.Watch != nil {
		w, _ := json.Marshal(d.Watch)
		if err := watch.Put([]byte(d.Watch.ExecutionID), w); err != nil {
			return result{err: err}
		}
	}
	if d.Unwatch != "" {
		if err := watch.Delete([]byte(d.Unwatch)); err != nil {
			return result{err: err}
		}
	}
	*h = head{seq: e.Sequence, hash: e.Hash, ts: now}
	*size += int64(len(rec))
	return result{event: e, n: len(rec)}
}

var emptyObject = []byte("{}")

func orEmpty(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return emptyObject
	}
	return b
}

func compactChunk(events *bolt.Bucket, upTo uint64, max int) (n int, freed int64, err error) {
	// Collect first, then delete: deleting under a cursor makes it skip the next key.
	var keys [][]byte
	c := events.Cursor()
	for k, v := c.First(); k != nil && len(keys) < max && readU64(k) <= upTo; k, v = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		freed += int64(len(v))
	}
	for _, k := range keys {
		if err := events.Delete(k); err != nil {
			return n, freed, err
		}
		n++
	}
	return n, freed, nil
}

// probe retries a tiny write until the journal can write again.
func (j *Journal) probe() {
	t := time.NewTicker(j.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		err := j.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyProbe, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		})
		if err == nil {
			j.mu.Lock()
			j.failed, j.probing = nil, false
			j.mu.Unlock()
			j.publishGauges()
			j.log.Info("journal writes again")
			return
		}
	}
}
