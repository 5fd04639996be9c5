package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The intent log: intents are appended to preallocated segment files next to the bbolt file
// (<journal file name>.intents-<instance>-000001.log, ...) by their own group-commit goroutine:
// one write at the tail and one fdatasync per group, no bbolt transaction. An event resolves its
// intent with an 8-byte key in bbolt's "resolved" bucket, in the event's own transaction: the
// intent's log position (segment number << 32 | byte offset), not its id, so the key is as
// sound as the position it names. The log counts the unresolved intents of each segment in
// memory, and a segment that is fully resolved and no longer the tail is deleted, then its keys
// are removed from the resolved bucket (maintenance, off the request path).
//
// Segments are bound to the bbolt file that resolves them: <instance> is a random id kept in the
// journal's meta bucket, made when the file is created. Segments of another instance (the bbolt
// file was deleted, replaced or recreated) cannot tell which of their intents were resolved,
// since that was in the lost file with the events: they are counted, reported and deleted at
// Open, like the lost journal's other contents, never recovered a second time.
//
// Frame format, repeated from the start of a segment:
//
//	4 bytes  magic "\xffINT" (0xff never occurs in the UTF-8 text of an intent's JSON fields)
//	uint32   the number of the segment it was written in, big-endian
//	uint32   its index among the frames of that segment (0, 1, 2 ...), big-endian
//	uint32   payload length, big-endian
//	uint32   CRC-32C of the segment number, the index, the length and the payload, big-endian
//	payload  the intent record (appendIntent), which carries its own CRC too
//
// Every write of a group ends with 16 zero bytes (overwritten by the next group): the end mark.
// Segments are recycled: a fully resolved segment is renamed to the next number and written again
// from its start, rather than deleted and a new one zero-filled (which doubles the bytes written
// and makes an I/O burst every 4 MiB). What is left after the end mark of a recycled segment are
// frames of its former life, recognised by their segment number.
//
// At Open every segment is scanned: a frame that fails its checks is reported with its segment
// and byte offset, and the scan resynchronises on the next offset where a sound frame of this
// segment starts, so a valid intent after a damaged one is never dropped. The written part ends at
// an end mark (zeros), a frame of another life, or fewer bytes than a header; damage with no sound
// frame after it is a torn tail (a write cut by a crash before its fdatasync, whose intent was
// never acknowledged). Every Open starts a new tail segment (lazily, at the first intent): old
// segments are only read.

const (
	frameHeader = 20
	// DefaultIntentSegmentBytes is the size of an intent log segment, allocated on disk when the
	// segment is first made.
	DefaultIntentSegmentBytes = 4 << 20
	maxIntentBatch            = 1024
	// anySegment scans frames whatever segment number they carry.
	anySegment = 0
)

var (
	frameMagic = [4]byte{0xff, 'I', 'N', 'T'}
	endMark    [frameHeader]byte
)

// appendFrame appends one frame holding payload, sealed as frame idx of segment no.
func appendFrame(dst []byte, no uint64, idx uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, make([]byte, frameHeader-4)...)
	dst = append(dst, payload...)
	sealFrame(dst[start:], no, idx)
	return dst
}

// appendIntentFrame appends the frame of in, encoded in place and not sealed yet (the log seals
// it when it knows the segment).
func appendIntentFrame(dst []byte, in *Intent) []byte {
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, make([]byte, frameHeader-4)...)
	return appendIntent(dst, in)
}

// sealFrame fills in the segment number, frame index, length and checksum of frame (header and
// payload).
func sealFrame(frame []byte, no uint64, idx uint32) {
	binary.BigEndian.PutUint32(frame[4:8], uint32(no))
	binary.BigEndian.PutUint32(frame[8:12], idx)
	binary.BigEndian.PutUint32(frame[12:16], uint32(len(frame)-frameHeader))
	sum := crc32.Update(crc32.Checksum(frame[4:16], castagnoli), castagnoli, frame[frameHeader:])
	binary.BigEndian.PutUint32(frame[16:20], sum)
}

// errOtherLife is a sound frame written in the segment's former life (another number).
var errOtherLife = errors.New("a frame of the segment's former life")

// frame is a sound frame read back: its intent and its index in its segment.
type frame struct {
	in  Intent
	idx uint32
}

// frameAt decodes the frame at b[off:] of segment no: the frame and its size, or why it is not a
// sound frame of that segment (errOtherLife: sound, but of another segment number).
func frameAt(b []byte, off int, no uint64) (frame, int, error) {
	rest := b[off:]
	if len(rest) < frameHeader {
		return frame{}, 0, fmt.Errorf("%w: %d bytes left, a frame header needs %d", ErrCorrupt, len(rest), frameHeader)
	}
	if !bytes.Equal(rest[:4], frameMagic[:]) {
		return frame{}, 0, fmt.Errorf("%w: no frame magic", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(rest[12:16])
	if uint64(n) > uint64(len(rest)-frameHeader) {
		return frame{}, 0, fmt.Errorf("%w: frame of %d bytes, %d left", ErrCorrupt, n, len(rest)-frameHeader)
	}
	payload := rest[frameHeader : frameHeader+int(n)]
	if crc32.Update(crc32.Checksum(rest[4:16], castagnoli), castagnoli, payload) != binary.BigEndian.Uint32(rest[16:20]) {
		return frame{}, 0, fmt.Errorf("%w: frame checksum mismatch", ErrCorrupt)
	}
	if no != anySegment && uint64(binary.BigEndian.Uint32(rest[4:8])) != no {
		return frame{}, frameHeader + int(n), errOtherLife
	}
	in, err := decodeIntent(nil, payload)
	if err != nil {
		return frame{}, 0, err
	}
	return frame{in: in, idx: binary.BigEndian.Uint32(rest[8:12])}, frameHeader + int(n), nil
}

// frameDamage is a region of a segment that holds no sound frame.
type frameDamage struct {
	Offset int64
	Reason string
	Tail   bool // nothing sound follows it in the segment
}

// scanFrames calls fn for every sound frame of segment no (anySegment: of any number) in its
// content b, in order, and returns the damaged regions it skipped: after a damaged frame the scan
// resumes at the next offset where a sound frame starts. The written part ends at an end mark or
// zeros, at a frame of the segment's former life or where no header fits: what follows is not
// damage unless a sound frame of this segment comes after it.
func scanFrames(b []byte, no uint64, fn func(off int64, f frame)) []frameDamage {
	var damage []frameDamage
	off := 0
	for off < len(b) {
		f, n, err := frameAt(b, off, no)
		if err == nil {
			fn(int64(off), f)
			off += n
			continue
		}
		next := resync(b, off+1, no)
		if next < 0 {
			end := len(b)-off < frameHeader || errors.Is(err, errOtherLife) || bytes.Equal(b[off:off+frameHeader], endMark[:])
			if !end {
				damage = append(damage, frameDamage{Offset: int64(off), Reason: err.Error(), Tail: true})
			}
			break
		}
		damage = append(damage, frameDamage{Offset: int64(off), Reason: err.Error()})
		off = next
	}
	return damage
}

// resync returns the first offset at or after from where a sound frame of segment no starts, or
// -1.
func resync(b []byte, from int, no uint64) int {
	for from < len(b) {
		i := bytes.Index(b[from:], frameMagic[:])
		if i < 0 {
			return -1
		}
		if _, _, err := frameAt(b, from+i, no); err == nil {
			return from + i
		}
		from += i + 1
	}
	return -1
}

// segment is one intent log file.
type segment struct {
	no      uint64
	path    string
	pending int  // its unresolved intents
	gone    bool // being deleted
}

// pendingIntent is where an unresolved intent is.
type pendingIntent struct {
	seg *segment
	pos uint64
}

type intentReq struct {
	id    string
	frame []byte
	done  chan error
}

// intentLog is the append-only intent store.
type intentLog struct {
	dir, prefix string
	instance    string // the journal instance the segments belong to
	segBytes    int64
	noSync      bool
	m           *Metrics
	log         *slog.Logger
	drop        func(*segment) // deletes a fully resolved segment that is not the tail

	reqs chan *intentReq
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup // segment drops in progress

	mu      sync.Mutex
	segs    []*segment               // in order
	pending map[string]pendingIntent // unresolved intent id → where it is
	tail    *segment                 // written by run; nil until the first intent of this run
	frames  uint32                   // frames written in the tail (the next one's index)
	file    *os.File                 // the tail's file
	off     int64                    // durable end of the tail
	broken  bool                     // the tail failed a write: the next write starts a new segment
	nextNo  uint64
	// spare is the next segment, prepared in the background once the tail is half full, so that
	// a rotation does not wait for the preallocation.
	spare     *segment
	spareFile *os.File
	preparing bool
	prep      sync.WaitGroup
	closed    bool // the tail and spare are closed: no spare is taken any more

	buf []byte // the batch being written (run only)
}

func segmentName(prefix, instance string, no uint64) string {
	return fmt.Sprintf("%s.intents-%s-%06d.log", prefix, instance, no)
}

// maxSegmentNo bounds segment numbers so that a position fits the 32 high bits of a key.
const maxSegmentNo = 1<<32 - 1

// position is an intent's place in the log: its segment and its frame index there. The resolved
// bucket holds, under each segment's number, a bitmap of the frame indices resolved.
func position(no uint64, idx uint32) uint64 { return no<<32 | uint64(idx) }

// listSegments returns the numbers of this instance's segments in dir, ascending, and the file
// names of other instances' segments.
func (l *intentLog) listSegments() (own []uint64, foreign []string, err error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("listing intent segments: %w", err)
	}
	pre, mine := l.prefix+".intents-", l.prefix+".intents-"+l.instance+"-"
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, ".log") || !e.Type().IsRegular() {
			continue
		}
		if !strings.HasPrefix(name, mine) {
			foreign = append(foreign, name)
			continue
		}
		no, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, mine), ".log"), 10, 64)
		if err != nil || no == 0 || no > maxSegmentNo {
			foreign = append(foreign, name)
			continue
		}
		own = append(own, no)
	}
	slices.Sort(own)
	return own, foreign, nil
}

// positionOf returns the log position of unresolved intent id.
func (l *intentLog) positionOf(id string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[id]
	return p.pos, ok
}

// has reports whether id is an unresolved intent.
func (l *intentLog) has(id string) bool {
	_, ok := l.positionOf(id)
	return ok
}

func (l *intentLog) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.pending))
}

// resolved records that ids were resolved durably (their keys are committed in the resolved
// bucket) and schedules the deletion of segments left with nothing unresolved.
func (l *intentLog) resolved(ids []string) {
	if len(ids) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		p, ok := l.pending[id]
		if !ok {
			continue
		}
		delete(l.pending, id)
		s := p.seg
		s.pending--
		l.maybeDropLocked(s)
	}
	l.m.IntentsPending.Set(float64(len(l.pending)))
}

func (l *intentLog) maybeDropLocked(s *segment) {
	if s.pending > 0 || s == l.tail || s.gone || l.drop == nil {
		return
	}
	s.gone = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.drop(s)
	}()
}

// forget removes a dropped segment from the list.
func (l *intentLog) forget(s *segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.segs = slices.DeleteFunc(l.segs, func(x *segment) bool { return x == s })
}

// run is the intent log's group commit: it collects the queued intents, writes them at the tail
// in one write, syncs once and wakes their waiters.
func (l *intentLog) run() {
	defer close(l.done)
	batch := make([]*intentReq, 0, maxIntentBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.stop:
			for {
				batch = batch[:0]
			drain:
				for len(batch) < maxIntentBatch {
					select {
					case r := <-l.reqs:
						batch = append(batch, r)
					default:
						break drain
					}
				}
				if len(batch) == 0 {
					l.closeTail()
					return
				}
				l.commit(batch)
			}
		}
		runtime.Gosched() // see Journal.run
	fill:
		for len(batch) < maxIntentBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

func (l *intentLog) closeTail() {
	l.prep.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.file != nil {
		_ = l.file.Close()
		l.file = nil
	}
	if l.spareFile != nil {
		_ = l.spareFile.Close() // left empty: deleted at the next Open
		l.spareFile, l.spare = nil, nil
	}
}

// prepare creates segment s as the spare.
func (l *intentLog) prepare(s *segment) {
	defer l.prep.Done()
	f, err := createSegment(s.path, l.segBytes, l.noSync)
	if err != nil {
		l.prepareFailed()
		l.log.Warn("cannot prepare the next intent segment (tried again when the current one is full)", "segment", s.path, "err", err)
		return
	}
	l.spareReady(s, f)
}

// spareReady ends a preparation: s, open as f and durable, becomes the spare (unless the log
// closed meanwhile: then it is left without a frame of its number, and deleted at the next Open).
func (l *intentLog) spareReady(s *segment, f *os.File) {
	if !l.noSync {
		l.m.Fsyncs.Inc()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preparing = false
	if l.closed {
		_ = f.Close()
		return
	}
	l.spare, l.spareFile = s, f
}

func (l *intentLog) prepareFailed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preparing = false
}

// commit writes a batch: the frames that fit in the tail in one write (sealed with its segment
// number, followed by an end mark when it fits) and one sync, then (after starting a new segment)
// the rest, and answers every request.
func (l *intentLog) commit(batch []*intentReq) {
	buf := l.buf[:0]
	defer func() {
		if cap(buf) <= 1<<20 {
			l.buf = buf[:0]
		}
	}()
	first := 0 // first request of buf
	// The tail changes only here (flush, rotate): read once, and again after a rotation.
	room, no, next, needNew := l.tailState()
	for i := 0; i <= len(batch); i++ {
		if i < len(batch) && !needNew && int64(len(buf)+len(batch[i].frame)) <= room {
			start := len(buf)
			buf = append(buf, batch[i].frame...)
			sealFrame(buf[start:], no, next+uint32(i-first))
			continue
		}
		if len(buf) > 0 {
			frames := len(buf)
			if int64(frames+len(endMark)) <= room {
				buf = append(buf, endMark[:]...)
			}
			err := l.flush(buf, frames, batch[first:i])
			for _, r := range batch[first:i] {
				r.done <- err
			}
			buf = buf[:0]
		}
		first = i
		if i == len(batch) {
			return
		}
		if err := l.rotate(); err != nil {
			for _, r := range batch[i:] {
				r.done <- err
			}
			return
		}
		room, no, next, needNew = l.tailState()
		i-- // retry this request in the new segment
	}
}

// tailState returns the room left in the tail, its number, the index of its next frame, and
// whether a new segment must be started first.
func (l *intentLog) tailState() (room int64, no uint64, next uint32, needNew bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tail == nil || l.broken {
		return 0, 0, 0, true
	}
	return l.segBytes - l.off, l.tail.no, l.frames, false
}

// flush writes buf (frames bytes of frames, then the end mark if any) at the tail, syncs it and
// registers its intents.
func (l *intentLog) flush(buf []byte, frames int, reqs []*intentReq) error {
	l.mu.Lock()
	f, off, s := l.file, l.off, l.tail
	l.mu.Unlock()
	_, err := f.WriteAt(buf, off)
	if err == nil && !l.noSync {
		err = unix.Fdatasync(int(f.Fd()))
		l.m.Fsyncs.Inc()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// What reached the disk is unknown: this segment is written no more (its sound frames, if
		// any, are read back at the next start as intents of requests that were refused).
		l.broken = true
		l.log.Error("writing intents failed; audited requests are refused (fail_closed) or counted lost (fail_open) until a write succeeds",
			"segment", s.path, "err", err)
		return fmt.Errorf("%w: writing intents to %s: %w", ErrFailed, filepath.Base(s.path), err)
	}
	l.off += int64(frames)
	for _, r := range reqs {
		pos := position(s.no, l.frames)
		l.frames++
		if _, dup := l.pending[r.id]; dup {
			continue
		}
		l.pending[r.id] = pendingIntent{seg: s, pos: pos}
		s.pending++
	}
	l.m.IntentsWritten.Add(float64(len(reqs)))
	l.m.IntentsPending.Set(float64(len(l.pending)))
	if l.spare == nil && !l.preparing && l.off > l.segBytes/2 {
		l.preparing = true
		s := l.newSegmentLocked()
		l.prep.Add(1)
		go l.prepare(s)
	}
	return nil
}

// recycle renames fully resolved segment s to the next segment number and keeps it open as the
// spare, so that the next rotation writes over it instead of allocating and zero-filling a new
// file. It reports false (and does nothing) when a spare is ready or being prepared, or s has
// another size; an error means s may be renamed or not.
func (l *intentLog) recycle(s *segment) (bool, error) {
	if st, err := os.Stat(s.path); err != nil || st.Size() != l.segBytes {
		return false, nil
	}
	l.mu.Lock()
	if l.spare != nil || l.preparing || l.closed {
		l.mu.Unlock()
		return false, nil
	}
	l.preparing = true
	next := l.newSegmentLocked()
	l.mu.Unlock()
	f, err := reuseSegment(s.path, next.path, l.noSync)
	if err != nil {
		l.prepareFailed()
		return false, err
	}
	l.spareReady(next, f)
	return true, nil
}

// reuseSegment renames segment from to to, durably, and opens it for writing.
func reuseSegment(from, to string, noSync bool) (*os.File, error) {
	if err := os.Rename(from, to); err != nil {
		return nil, fmt.Errorf("renaming: %w", err)
	}
	f, err := os.OpenFile(to, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	if !noSync {
		if err := syncDir(filepath.Dir(to)); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return f, nil
}

// newSegmentLocked names the next segment.
func (l *intentLog) newSegmentLocked() *segment {
	s := &segment{no: l.nextNo, path: filepath.Join(l.dir, segmentName(l.prefix, l.instance, l.nextNo))}
	l.nextNo++
	return s
}

// rotate starts a new tail segment, preallocated so that a full disk shows here and not in the
// middle of a write; the old tail is closed (and deleted once nothing in it is unresolved).
func (l *intentLog) rotate() error {
	l.mu.Lock()
	s, f := l.spare, l.spareFile
	l.spare, l.spareFile = nil, nil
	if s == nil {
		s = l.newSegmentLocked()
	}
	l.mu.Unlock()
	if s.no > maxSegmentNo {
		return fmt.Errorf("%w: intent segment numbers are used up (%d)", ErrFailed, s.no)
	}
	if f == nil {
		var err error
		if f, err = createSegment(s.path, l.segBytes, l.noSync); err != nil {
			l.log.Error("cannot start a new intent segment; audited requests are refused (fail_closed) or counted lost (fail_open) until it can",
				"segment", s.path, "err", err)
			return fmt.Errorf("%w: starting intent segment %s: %w", ErrFailed, filepath.Base(s.path), err)
		}
		if !l.noSync {
			l.m.Fsyncs.Inc()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.tail
	if l.file != nil {
		_ = l.file.Close()
	}
	l.segs = append(l.segs, s)
	l.tail, l.file, l.off, l.broken, l.frames = s, f, 0, false, 0
	if old != nil {
		l.maybeDropLocked(old)
	}
	return nil
}

// createSegment creates a segment file of size bytes, allocated on disk, and makes its existence
// durable.
func createSegment(path string, size int64, noSync bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	// Zeros are written rather than fallocated: on ext4 and XFS a write into fallocated
	// (unwritten) space makes every fdatasync commit an extent conversion too.
	if _, err := io.CopyBuffer(f, io.LimitReader(zeroReader{}, size), make([]byte, 256<<10)); err != nil {
		return fail(fmt.Errorf("preallocating: %w", err))
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("syncing: %w", err))
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// readSegment returns the content of segment s: up to the durable end for the tail.
func (l *intentLog) readSegment(s *segment) ([]byte, error) {
	l.mu.Lock()
	limit := int64(-1)
	if s == l.tail {
		limit = l.off
	}
	l.mu.Unlock()
	b, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("reading intent segment: %w", err)
	}
	if limit >= 0 && limit < int64(len(b)) {
		b = b[:limit]
	}
	return b, nil
}
