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
//
// Intents (intent.go, intentlog.go) make the audit write-ahead: one is appended to the intent
// log (preallocated segment files beside the bbolt file, with their own group commit: one write
// and one fdatasync per group) before an audited request is forwarded, and the event that records
// the request resolves it in its own transaction (a key in the resolved bucket). Intents left
// unresolved by a crash are listed at Open for the application to turn into events.
//
// Files: journal.go (API), writer.go (the group-commit writer), recovery.go (checks at Open),
// maintenance.go (compaction, once-key pruning), intent.go, intentlog.go, intentlog_open.go,
// codec.go (record format).
package journal

import (
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

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
	bucketIntents = []byte("intents") // the former design's intents: read once at Open, then emptied
	// bucketResolved holds the ids of resolved intents whose segment still exists (intentlog.go).
	bucketResolved = []byte("resolved")

	keyChainID = []byte("chain_id")
	// keyInstance is this journal file's random id, which names its intent segments.
	keyInstance = []byte("instance")
	keyFormat   = []byte("format")
	keyHeadSeq  = []byte("head_seq")
	keyHeadHsh  = []byte("head_hash")
	keyHeadTS   = []byte("head_ts")
	keyProbe    = []byte("probe")
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
	// Resolves names the intent (see Intent) this event resolves, removed in the same
	// transaction. It is resolved too when the append is refused with ErrDuplicate.
	Resolves string
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
	// IntentSegmentBytes is the preallocated size of an intent log segment (default
	// DefaultIntentSegmentBytes).
	IntentSegmentBytes int64
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
	// CutHeld counts the cut records every sink had already acknowledged (they are in the sinks,
	// not lost); CutLost the others. CutInMiddle is true when sound records follow the first cut
	// one (a damaged record in the middle of the re-verified window, not at the tail).
	CutHeld, CutLost int
	CutInMiddle      bool
	// IntentsPending is the number of unresolved intents (requests forwarded whose event was
	// never journaled): the application turns each into one event.
	IntentsPending int
	// IntentsCut lists damaged intent records that were cut.
	IntentsCut []IntentDamage
	// IntentsForeign counts the intents of ForeignSegments: intent log segments of another
	// journal file (this one was lost or replaced), deleted without recovering them.
	IntentsForeign int
	// Completions counts the pending intents whose event was found in the completion log: the
	// request was answered and its event written, but the process died before it was appended.
	// Recovery appends them as they were observed (Intent.Completion).
	Completions     int
	ForeignSegments []string
}

type head struct {
	seq  uint64
	hash string
	ts   int64 // Unix µs
}

// Journal is the durable log. It is safe for concurrent use.
type Journal struct {
	db      *bolt.DB
	ilog    *intentLog
	clog    *completionLog
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
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, nil, fmt.Errorf("opening journal %s: locked by another process (is another flowker-audit running on this data_dir?)", opts.Path)
		}
		return nil, nil, fmt.Errorf("opening journal %s: %w", opts.Path, err)
	}
	j := &Journal{
		db: db, opts: opts, log: opts.Logger, m: opts.Metrics,
		reqs: make(chan *request, 8192), stop: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}),
	}
	rec, instance, err := j.recover()
	if err == nil {
		err = j.openIntents(rec, instance)
	}
	if err == nil {
		err = j.openCompletions(rec, instance)
	}
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	j.m.MaxBytes.Set(float64(opts.MaxBytes))
	j.publishGauges()
	go j.run()
	go j.ilog.run()
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
	return j.await(ctx, &request{kind: kindAck, name: name, seq: seq, done: make(chan result, 1)})
}

// await submits r and waits for its answer or the end of ctx (r is answered regardless).
func (j *Journal) await(ctx context.Context, r *request) error {
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
		close(j.ilog.stop) // answers the intents queued, then stops
		<-j.ilog.done
		close(j.stop)
		<-j.done
		j.clog.close()
		j.ilog.wg.Wait() // segment deletions (their key removal was answered or refused)
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
