package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/damagetest"
)

func intent(i int) Intent {
	d := draft(i)
	d.Result = ""
	return Intent{ID: d.EventID, Start: time.UnixMicro(1_700_000_000_000_000 + int64(i)).UTC(), Draft: d,
		Detail: []byte(`{"method":"POST","path":"/v1/workflows"}`)}
}

func TestIntentLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	resolved, kept, dup := intent(1), intent(2), intent(3)
	for _, in := range []Intent{resolved, kept, dup} {
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if n := j.Pending(); n != 3 {
		t.Fatalf("pending %d, want 3", n)
	}
	// The event resolves its intent in the same transaction.
	d := resolved.Draft
	d.Result, d.Resolves = chain.ResultSuccess, resolved.ID
	if _, err := j.Append(ctx, d); err != nil {
		t.Fatal(err)
	}
	// A duplicate (once-key already used) resolves its intent without an event.
	first := draft(10)
	first.Once = "exec-start:x"
	if _, err := j.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	d = dup.Draft
	d.Result, d.Once, d.Resolves = chain.ResultSuccess, "exec-start:x", dup.ID
	if _, err := j.Append(ctx, d); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if n := j.Pending(); n != 1 {
		t.Fatalf("pending %d, want 1", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, rec := open(t, path)
	defer j.Close()
	if rec.IntentsPending != 1 || len(rec.IntentsCut) != 0 {
		t.Fatalf("recovery: %+v", rec)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 1 {
		t.Fatalf("intents: %v %+v", err, got)
	}
	g := got[0]
	if g.ID != kept.ID || !g.Start.Equal(kept.Start) || string(g.Detail) != string(kept.Detail) ||
		g.Draft.EventID != kept.ID || g.Draft.ResourceID != kept.Draft.ResourceID || g.Draft.Actor != kept.Draft.Actor ||
		string(g.Draft.Context) != string(kept.Draft.Context) || string(g.Draft.Metadata) != string(kept.Draft.Metadata) {
		t.Fatalf("intent read back as %+v, want %+v", g, kept)
	}
	if err := j.Resolve(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if n := j.Pending(); n != 0 {
		t.Fatalf("pending %d after Resolve", n)
	}
}

// writeIntents makes n intents durable with ids in write order, closes the journal and returns
// the ids and the frames' offsets in the (single) segment.
func writeIntents(t *testing.T, path string, n int) (ids []string, offsets []int64, seg string) {
	t.Helper()
	ctx := context.Background()
	j, _ := open(t, path)
	instance := j.ilog.instance
	for i := range n {
		in := intent(i)
		in.ID = fmt.Sprintf("0000000%d-0000-7000-8000-000000000000", i)
		in.Draft.EventID = in.ID
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	seg = filepath.Join(filepath.Dir(path), segmentName(filepath.Base(path), instance, 1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	scanFrames(b, 1, func(off int64, _ frame) { offsets = append(offsets, off) })
	if len(offsets) != n {
		t.Fatalf("%d frames in the segment, want %d", len(offsets), n)
	}
	return ids, offsets, seg
}

// A damaged intent frame is cut and reported with its segment and position; the scan
// resynchronises on the next sound frame, so the intents after it are kept.
func TestDamagedIntentIsCutOthersKept(t *testing.T) {
	cases := []struct {
		name   string
		damage func(b []byte, off, next int64)
	}{
		{"flipped payload byte", func(b []byte, off, next int64) { b[(off+next)/2] ^= 0xff }},
		{"flipped length", func(b []byte, off, _ int64) { b[off+5] ^= 0x40 }},
		{"length beyond the segment", func(b []byte, off, _ int64) { b[off+4] = 0x7f }},
		{"no magic", func(b []byte, off, _ int64) { b[off] = 'x' }},
		{"zeroed", func(b []byte, off, next int64) { clear(b[off:next]) }},
		{"truncated, rest zeroed", func(b []byte, off, next int64) { clear(b[(off+next)/2 : next]) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.db")
			ids, offs, seg := writeIntents(t, path, 3)
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			c.damage(b, offs[1], offs[2])
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}

			j, rec := open(t, path)
			defer j.Close()
			if len(rec.IntentsCut) != 1 || rec.IntentsCut[0].Position != offs[1] || rec.IntentsCut[0].Segment != filepath.Base(seg) ||
				rec.IntentsCut[0].Tail || rec.IntentsPending != 2 {
				t.Fatalf("recovery: %+v (frames at %v)", rec, offs)
			}
			if got := testutil.ToFloat64(j.m.IntentsCut); got != 1 {
				t.Fatalf("intents_cut_total %v", got)
			}
			got, err := j.Intents()
			if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[2] {
				t.Fatalf("intents after the cut: %v %+v", err, got)
			}
		})
	}
}

// A write cut by a crash (a partial frame at the end of the written part) is a torn tail: cut,
// counted, and the intents before it kept.
func TestTornIntentTailIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	ids, offs, seg := writeIntents(t, path, 3)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The third frame is torn: only its first half reached the disk.
	size := offs[2] - offs[1]
	clear(b[offs[2]+size/2:])
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if len(rec.IntentsCut) != 1 || !rec.IntentsCut[0].Tail || rec.IntentsCut[0].Position != offs[2] || rec.IntentsPending != 2 {
		t.Fatalf("recovery: %+v", rec)
	}
	if got := testutil.ToFloat64(j.m.IntentsCut); got != 1 {
		t.Fatalf("intents_cut_total %v", got)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("intents after the cut: %v %+v", err, got)
	}
}

// A data_dir of the former design (intents in the bbolt bucket) recovers its pending intents
// once: they move into the intent log and the bucket is emptied; a damaged one is reported.
func TestIntentsOfTheBboltBucketAreMigrated(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := intent(1), intent(2)
	if a.ID > b.ID {
		a, b = b, a // Intents returns id order
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketIntents)
		for _, in := range []Intent{a, b} {
			if err := bk.Put([]byte(in.ID), appendIntent(nil, &in)); err != nil {
				return err
			}
		}
		return bk.Put([]byte("zz-damaged"), []byte{1, 2, 3, 4, 5})
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		j, rec := open(t, path)
		got, err := j.Intents()
		if err != nil || len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID || string(got[1].Detail) != string(b.Detail) {
			t.Fatalf("round %d: intents %v %+v", round, err, got)
		}
		wantCut := map[int]int{0: 1, 1: 0}[round]
		if rec.IntentsPending != 2 || len(rec.IntentsCut) != wantCut {
			t.Fatalf("round %d: recovery %+v", round, rec)
		}
		if wantCut == 1 && (rec.IntentsCut[0].Key != "zz-damaged" || rec.IntentsCut[0].Segment != oldBucketName) {
			t.Fatalf("damage %+v", rec.IntentsCut[0])
		}
		err = j.db.View(func(tx *bolt.Tx) error {
			if k, _ := tx.Bucket(bucketIntents).Cursor().First(); k != nil {
				return fmt.Errorf("bucket still holds %q", k)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if round == 1 {
			d := a.Draft
			d.Result, d.Resolves = chain.ResultSuccess, a.ID
			if _, err := j.Append(ctx, d); err != nil {
				t.Fatal(err)
			}
			if j.Pending() != 1 {
				t.Fatalf("pending %d", j.Pending())
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	j, rec := open(t, path)
	defer j.Close()
	if got, err := j.Intents(); err != nil || rec.IntentsPending != 1 || len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("after resolving one: %v %+v %+v", err, rec, got)
	}
}

// Segments whose intents are all resolved are deleted once they are not the tail, and their ids
// leave the resolved bucket; nothing resolved comes back at the next Open.
func TestResolvedSegmentsAreDeleted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	small := func(o *Options) { o.IntentSegmentBytes = 4 << 10 }
	j, _ := open(t, path, small)
	segments := func() []string {
		m, err := filepath.Glob(filepath.Join(filepath.Dir(path), "j.db.intents-*.log"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var kept Intent
	for i := range 40 {
		in := intent(100 + i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			kept = in // left unresolved: its segment stays
			continue
		}
		d := in.Draft
		d.Result, d.Resolves = chain.ResultSuccess, in.ID
		if _, err := j.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	j.ilog.mu.Lock()
	written := j.ilog.nextNo - 1
	j.ilog.mu.Unlock()
	if written < 3 {
		t.Fatalf("%d segments written: the test needs several", written)
	}
	// Deletion runs in the background: wait for it (bounded by the test's own timeout).
	live := func() int {
		j.ilog.mu.Lock()
		defer j.ilog.mu.Unlock()
		return len(j.ilog.segs)
	}
	for live() > 2 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(segments()); n > 3 {
		t.Fatalf("%d segment files: deleted segments are still there", n) // 2 live and maybe a spare
	}
	if j.Pending() != 1 {
		t.Fatalf("pending %d", j.Pending())
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path, small)
	defer j.Close()
	got, err := j.Intents()
	if err != nil || rec.IntentsPending != 1 || len(got) != 1 || got[0].ID != kept.ID {
		t.Fatalf("after reopening: %v %+v %+v", err, rec, got)
	}
	if n := len(segments()); n != 1 {
		t.Fatalf("%d segments left after Open, want the one holding the unresolved intent", n)
	}
	var keys int
	_ = j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResolved).ForEach(func(_, _ []byte) error { keys++; return nil })
	})
	if keys >= 40 {
		t.Fatalf("%d resolved keys left", keys)
	}
	if err := j.Resolve(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if j.Pending() != 0 {
		t.Fatal("still pending")
	}
}

// FuzzIntentFrames: the frame reader never panics, and a sound frame written after any bytes is
// found (resynchronisation).
func FuzzIntentFrames(f *testing.F) {
	in := intent(1)
	sound := appendFrame(nil, 1, 0, appendIntent(nil, &in))
	f.Add([]byte{})
	f.Add(sound[:len(sound)/2])
	f.Add(append(append([]byte(nil), frameMagic[:]...), 0, 0, 0, 9, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		scanFrames(b, 1, func(int64, frame) {})
		var found bool
		scanFrames(append(append([]byte(nil), b...), sound...), 1, func(_ int64, got frame) {
			found = found || got.in.ID == in.ID
		})
		if !found {
			t.Fatalf("a sound frame after %x was not found", b)
		}
	})
}

func TestIntentRefusedAtTheBound(t *testing.T) {
	j, _ := open(t, filepath.Join(t.TempDir(), "j.db"), func(o *Options) { o.MaxBytes = reserve + 100 })
	defer j.Close()
	if err := j.Intend(context.Background(), intent(1)); !errors.Is(err, ErrFull) {
		t.Fatalf("intent at the bound: %v", err)
	}
	if j.Pending() != 0 {
		t.Fatal("a refused intent is pending")
	}
}

func FuzzDecodeIntent(f *testing.F) {
	in := intent(1)
	f.Add([]byte(in.ID), appendIntent(nil, &in))
	f.Add([]byte("k"), []byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, key, b []byte) {
		got, err := decodeIntent(key, b)
		if err != nil {
			return
		}
		again, err := decodeIntent(key, appendIntent(nil, &got))
		if err != nil || again.ID != got.ID || !again.Start.Equal(got.Start) || string(again.Detail) != string(got.Detail) {
			t.Fatalf("round trip: %v %+v %+v", err, again, got)
		}
	})
}

// Intent segments belong to the journal file that resolves them: when the file is lost (deleted,
// replaced), the segments left beside it cannot tell which of their intents had an event, so the
// new journal reports and deletes them instead of recovering every intent in them again.
func TestSegmentsOfALostJournalAreNotRecovered(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "j.db")
	j, _ := open(t, path)
	for i := range 4 {
		in := intent(200 + i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			continue // one left unresolved
		}
		d := in.Draft
		d.Result, d.Resolves = chain.ResultSuccess, in.ID
		if _, err := j.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if rec.IntentsPending != 0 || rec.IntentsForeign != 4 || len(rec.ForeignSegments) != 1 {
		t.Fatalf("recovery after the journal file was lost: pending %d, foreign %d in %v", rec.IntentsPending, rec.IntentsForeign, rec.ForeignSegments)
	}
	if got, err := j.Intents(); err != nil || len(got) != 0 {
		t.Fatalf("intents: %v %+v", err, got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "j.db.intents-*.log")); len(left) != 0 {
		t.Fatalf("segments of the lost journal left: %v", left)
	}
	if v := testutil.ToFloat64(j.m.IntentsForeign); v != 4 {
		t.Fatalf("foreign intents metric %v", v)
	}
	// The new journal's own intents are recovered as usual.
	if err := j.Intend(ctx, intent(300)); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, rec := open(t, path)
	defer j2.Close()
	if rec.IntentsPending != 1 || rec.IntentsForeign != 0 {
		t.Fatalf("reopened: %+v", rec)
	}
}

// The resolved bucket names intents by their position in the log, not by their id: damage to
// the bytes of an event id in the journal file (the event's record is then cut as damaged) does
// not turn its intent, resolved long ago, into a pending one.
func TestResolutionIsKeyedByPosition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	var resolvedIDs []string
	var open1 string
	for i := range 3 {
		in := intent(400 + i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			open1 = in.ID
			continue
		}
		d := in.Draft
		d.Result, d.Resolves = chain.ResultSuccess, in.ID
		if _, err := j.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
		resolvedIDs = append(resolvedIDs, in.ID)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range resolvedIDs {
		if damagetest.FlipAll(b, []byte(id)) == 0 {
			t.Fatalf("event %s not in the journal file", id)
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path)
	defer j.Close()
	if rec.IntentsPending != 1 {
		t.Fatalf("pending after the ids were damaged: %d, want 1 (the unresolved one)", rec.IntentsPending)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 1 || got[0].ID != open1 {
		t.Fatalf("intents: %v %+v", err, got)
	}
}

// Resolved segments are recycled: renamed to the next number and written over, so steady
// traffic allocates no new files; the frames of a segment's former life left after its end mark
// are neither intents nor damage when the journal is opened again.
func TestResolvedSegmentsAreRecycled(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "j.db")
	small := func(o *Options) { o.IntentSegmentBytes = 8 << 10 }
	j, _ := open(t, path, small)
	inodes := map[uint64]bool{}
	note := func() {
		m, _ := filepath.Glob(filepath.Join(dir, "j.db.intents-*.log"))
		for _, p := range m {
			if st, err := os.Stat(p); err == nil {
				inodes[st.Sys().(*syscall.Stat_t).Ino] = true
			}
		}
	}
	var open1 []string
	for i := range 200 {
		in := intent(500 + i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i >= 197 {
			open1 = append(open1, in.ID) // the last three stay unresolved, in a recycled tail
			continue
		}
		d := in.Draft
		d.Result, d.Resolves = chain.ResultSuccess, in.ID
		if _, err := j.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
		note()
	}
	j.ilog.mu.Lock()
	written := j.ilog.nextNo - 1
	j.ilog.mu.Unlock()
	if written < 6 || len(inodes) > 3 {
		t.Fatalf("%d segments numbered, %d files made: want many segments in a few recycled files", written, len(inodes))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, rec := open(t, path, small)
	defer j.Close()
	if len(rec.IntentsCut) != 0 || rec.IntentsPending != 3 {
		t.Fatalf("reopened over recycled segments: %+v", rec)
	}
	got, err := j.Intents()
	if err != nil || len(got) != 3 {
		t.Fatalf("intents: %v %+v", err, got)
	}
	for _, in := range got {
		if !slices.Contains(open1, in.ID) {
			t.Fatalf("intent %s is not one of the unresolved %v", in.ID, open1)
		}
	}
}

// A write torn by a crash over a recycled segment's former frames is still a torn tail, and the
// former frames after it are not reported.
func TestTornWriteOverARecycledSegment(t *testing.T) {
	in1, in2, old := intent(600), intent(601), intent(602)
	var b []byte
	for i := range 4 {
		b = appendFrame(b, 7, uint32(i), appendIntent(nil, &old)) // the former life: segment 7
	}
	cur := appendFrame(nil, 9, 0, appendIntent(nil, &in1))
	torn := appendFrame(nil, 9, 1, appendIntent(nil, &in2))
	copy(b, cur)
	copy(b[len(cur):], torn[:len(torn)/2]) // the second write reached the disk half-way
	var ids []string
	damage := scanFrames(b, 9, func(_ int64, f frame) { ids = append(ids, f.in.ID) })
	if len(ids) != 1 || ids[0] != in1.ID || len(damage) != 1 || !damage[0].Tail || damage[0].Offset != int64(len(cur)) {
		t.Fatalf("found %v, damage %+v", ids, damage)
	}
	// With the end mark written after the first frame instead, the former frames end the scan.
	copy(b[len(cur):], endMark[:])
	ids = ids[:0]
	if damage := scanFrames(b, 9, func(_ int64, f frame) { ids = append(ids, f.in.ID) }); len(ids) != 1 || len(damage) != 0 {
		t.Fatalf("after an end mark: found %v, damage %+v", ids, damage)
	}
}

// Resolutions are one bitmap per segment, indexed by the frame index each frame carries (so a
// damaged frame skipped at Open does not shift the others): a dropped segment's bitmap goes, the
// others stay.
func TestResolutionBitmapsPerSegment(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	small := func(o *Options) { o.IntentSegmentBytes = 8 << 10 }
	j, _ := open(t, path, small)
	defer j.Close()
	var kept []Intent
	for i := range 60 {
		in := intent(700 + i)
		if err := j.Intend(ctx, in); err != nil {
			t.Fatal(err)
		}
		if i%20 == 3 {
			kept = append(kept, in) // one unresolved intent in each of several segments
			continue
		}
		d := in.Draft
		d.Result, d.Resolves = chain.ResultSuccess, in.ID
		if _, err := j.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	bitmaps := func(j *Journal) map[uint64][]byte {
		out := map[uint64][]byte{}
		_ = j.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketResolved).ForEach(func(k, v []byte) error {
				out[readU64(k)] = append([]byte(nil), v...)
				return nil
			})
		})
		return out
	}
	j.ilog.mu.Lock()
	live := map[uint64]bool{}
	for _, s := range j.ilog.segs {
		live[s.no] = true
	}
	pos := map[string]uint64{}
	for _, in := range kept {
		pos[in.ID] = j.ilog.pending[in.ID].pos
	}
	j.ilog.mu.Unlock()
	for no, bm := range bitmaps(j) {
		if !live[no] {
			continue // a dropped segment whose bitmap removal is still queued
		}
		for _, in := range kept {
			if p := pos[in.ID]; p>>32 == no && resolvedIn(bm, uint32(p)) {
				t.Fatalf("unresolved intent %s is marked in segment %d's bitmap", in.ID, no)
			}
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, rec := open(t, path, small)
	defer j2.Close()
	if rec.IntentsPending != len(kept) {
		t.Fatalf("pending after reopening: %d, want %d", rec.IntentsPending, len(kept))
	}
	left := bitmaps(j2)
	if len(left) == 0 {
		t.Fatal("no bitmap left: the unresolved intents' segments have resolved frames too")
	}
	for no := range left {
		found := false
		for _, s := range j2.ilog.segs {
			found = found || s.no == no
		}
		if !found {
			t.Fatalf("bitmap of segment %d left after Open, which has no such segment", no)
		}
	}
}
