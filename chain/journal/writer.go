package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
)

type reqKind int

const (
	kindAppend reqKind = iota
	kindAck
	kindCompact
	kindRebase
	kindPruneOnce
	kindResolve
	kindForget
	kindFlush
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
	// then, when set, is called with the result instead of sending it on done (Complete).
	then func(chain.Event, error)
}

type result struct {
	event chain.Event
	n     int
	err   error
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

// batchState is what one group commit changes, applied to the Journal only once it committed.
type batchState struct {
	head      head
	size      int64
	appended  int
	added     int64
	compacted int
	firstNew  uint64
	firstLeft uint64
	once      map[string]bool // Once keys staged in this batch
	// resolved are the intents resolved in this batch (committed: the intent log learns them).
	resolved    map[string]bool
	resolvedIDs []string
	bitmaps     map[uint64][]byte // resolution bitmaps changed, by segment number
}

// commit runs one batch as one transaction (one fsync) and answers every request. A batch of
// nothing but Flush barriers writes nothing: what was queued before them is committed already.
func (j *Journal) commit(batch []*request) {
	if !slices.ContainsFunc(batch, func(r *request) bool { return r.kind != kindFlush }) {
		for _, r := range batch {
			r.done <- result{}
		}
		return
	}
	start := time.Now()
	j.mu.Lock()
	st := batchState{head: j.head, size: j.bytes, once: map[string]bool{}}
	j.mu.Unlock()

	results := make([]result, len(batch))
	err := j.apply(batch, results, &st)
	if err != nil {
		j.failBatch(results, err)
	} else {
		j.committed(&st, time.Since(start))
	}
	for i, r := range batch {
		if r.then == nil {
			r.done <- results[i]
			continue
		}
		if results[i].err == nil {
			j.m.AppendDuration.Observe(time.Since(r.start).Seconds())
		}
		r.then(results[i].event, results[i].err)
	}
}

// apply stages every request of the batch in one write transaction and commits it. A request
// that is refused on its own (ErrDuplicate, ErrFull, a bad rebase) gets its error in results and
// staged nothing; any write error aborts the whole transaction, so nothing half-staged is ever
// committed.
func (j *Journal) apply(batch []*request, results []result, st *batchState) error {
	tx, err := j.db.Begin(true)
	if err != nil {
		return err
	}
	b := &buckets{tx: tx}
	start := st.head
	for i, r := range batch {
		switch r.kind {
		case kindAppend:
			results[i], err = j.stage(r.draft, st, b)
			if err == nil && results[i].err == nil {
				st.appended++
				st.added += int64(results[i].n)
				if st.firstNew == 0 {
					st.firstNew = results[i].event.Sequence
				}
			}
		case kindResolve:
			err = j.resolveIntent(r.name, st, b)
		case kindForget:
			err = b.resolvedB().Delete(u64(r.seq))
		case kindFlush: // a barrier: answered with its batch, after every request queued before it
		case kindAck:
			err = tx.Bucket(bucketCursors).Put([]byte(r.name), u64(r.seq))
		case kindRebase:
			if r.seq <= st.head.seq {
				results[i].err = fmt.Errorf("cannot rebase to sequence %d: the journal is already at %d", r.seq, st.head.seq)
			} else {
				st.head = head{seq: r.seq, hash: r.hash, ts: r.ts}
			}
		case kindPruneOnce:
			results[i].n, err = pruneOnceChunk(b.once(), r.ts, pruneOnceChunkSize)
		case kindCompact:
			var freed int64
			results[i].n, freed, err = compactChunk(b.events(), r.seq, compactChunkSize)
			st.compacted += results[i].n
			st.size -= freed
		}
		if err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	if st.compacted > 0 {
		// The first retained event, read rather than derived: after a rebase the retained
		// sequences need not be contiguous with the head.
		if k, _ := b.events().Cursor().First(); k != nil {
			st.firstLeft = readU64(k)
		}
	}
	if err := putBitmaps(st, b); err != nil {
		_ = tx.Rollback()
		return err
	}
	if st.head != start {
		if err := putHead(tx.Bucket(bucketMeta), st.head); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// failBatch answers a batch whose transaction failed and marks the journal failed until a probe
// write succeeds.
func (j *Journal) failBatch(results []result, cause error) {
	err := fmt.Errorf("%w: %v", ErrFailed, cause)
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
}

// committed publishes a committed batch: head, sizes, waiters and metrics.
func (j *Journal) committed(st *batchState, took time.Duration) {
	j.mu.Lock()
	j.head, j.bytes = st.head, st.size
	j.entries += int64(st.appended) - int64(st.compacted)
	if st.appended > 0 && j.first == 0 {
		j.first = st.firstNew
	}
	if st.compacted > 0 {
		j.first = st.firstLeft // 0 when nothing is retained
	}
	if st.appended > 0 {
		close(j.notify)
		j.notify = make(chan struct{})
	}
	j.mu.Unlock()
	if !j.opts.NoSync {
		j.m.Fsyncs.Inc()
	}
	j.m.CommitDuration.Observe(took.Seconds())
	if st.appended > 0 {
		j.m.GroupSize.Observe(float64(st.appended))
		j.m.AppendedEvents.Add(float64(st.appended))
		j.m.AppendedBytes.Add(float64(st.added))
	}
	if st.compacted > 0 {
		j.m.Compacted.Add(float64(st.compacted))
	}
	j.ilog.resolved(st.resolvedIDs)
	j.clog.resolved(st.resolvedIDs)
	j.publishGauges()
}

// buckets opens the buckets of a write transaction when first used (opening one allocates, and
// most batches touch only some).
type buckets struct {
	tx                                  *bolt.Tx
	eventsB, onceB, watchB, resolvedBkt *bolt.Bucket
}

func (b *buckets) events() *bolt.Bucket {
	if b.eventsB == nil {
		b.eventsB = b.tx.Bucket(bucketEvents)
		b.eventsB.FillPercent = 1.0 // append-only keys
	}
	return b.eventsB
}

func (b *buckets) once() *bolt.Bucket {
	if b.onceB == nil {
		b.onceB = b.tx.Bucket(bucketOnce)
	}
	return b.onceB
}

func (b *buckets) watch() *bolt.Bucket {
	if b.watchB == nil {
		b.watchB = b.tx.Bucket(bucketWatch)
	}
	return b.watchB
}

func (b *buckets) resolvedB() *bolt.Bucket {
	if b.resolvedBkt == nil {
		b.resolvedBkt = b.tx.Bucket(bucketResolved)
		b.resolvedBkt.FillPercent = 1.0 // keys are segment numbers: appended
	}
	return b.resolvedBkt
}

// stage sequences one draft and stages it inside the commit transaction. The draft is refused
// (res.err, nothing staged) when it cannot be appended on its own; every check happens before the
// first write. A write error (err) means the transaction holds part of the draft and must be
// rolled back.
func (j *Journal) stage(d *Draft, st *batchState, b *buckets) (res result, err error) {
	if d.Once != "" {
		if st.once[d.Once] || b.once().Get([]byte(d.Once)) != nil {
			// Nothing new happened: the intent (if any) is resolved without an event.
			if d.Resolves == "" {
				return result{err: ErrDuplicate}, nil
			}
			return result{err: ErrDuplicate}, j.resolveIntent(d.Resolves, st, b)
		}
		if len(d.Once) > bolt.MaxKeySize {
			return result{err: fmt.Errorf("once-key of %d bytes is too long", len(d.Once))}, nil
		}
	}
	var watch []byte
	if d.Watch != nil {
		if d.Watch.ExecutionID == "" || len(d.Watch.ExecutionID) > bolt.MaxKeySize {
			return result{err: fmt.Errorf("invalid execution id to watch (%d bytes)", len(d.Watch.ExecutionID))}, nil
		}
		if watch, err = json.Marshal(d.Watch); err != nil {
			return result{err: fmt.Errorf("encoding watch entry: %w", err)}, nil
		}
	}
	if len(d.Unwatch) > bolt.MaxKeySize {
		return result{err: fmt.Errorf("execution id to unwatch of %d bytes is too long", len(d.Unwatch))}, nil
	}
	h := st.head
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
	if st.size+int64(len(rec)) > j.opts.MaxBytes {
		return result{err: ErrFull}, nil
	}
	// Writes: the record's companions first, the record last.
	if d.Once != "" {
		// The key's sequence and when it was written (for PruneOnce).
		if err := b.once().Put([]byte(d.Once), append(u64(e.Sequence), u64(uint64(now/1e6))...)); err != nil {
			return result{}, err
		}
	}
	if watch != nil {
		if err := b.watch().Put([]byte(d.Watch.ExecutionID), watch); err != nil {
			return result{}, err
		}
	}
	if d.Unwatch != "" {
		if err := b.watch().Delete([]byte(d.Unwatch)); err != nil {
			return result{}, err
		}
	}
	if d.Resolves != "" {
		if err := j.resolveIntent(d.Resolves, st, b); err != nil {
			return result{}, err
		}
	}
	if err := b.events().Put(u64(e.Sequence), rec); err != nil {
		return result{}, err
	}
	if d.Once != "" {
		st.once[d.Once] = true
	}
	st.head = head{seq: e.Sequence, hash: e.Hash, ts: now}
	st.size += int64(len(rec))
	return result{event: e, n: len(rec)}, nil
}

var emptyObject = []byte("{}")

func orEmpty(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return emptyObject
	}
	return b
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
