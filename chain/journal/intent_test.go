package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/flowker-audit/flowker-audit/chain"
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

// A damaged intent record is cut and reported with its position; the sound ones around it stay.
func TestDamagedIntentIsCutOthersKept(t *testing.T) {
	cases := []struct {
		name   string
		damage func(v []byte) []byte
	}{
		{"flipped byte", func(v []byte) []byte { v = append([]byte(nil), v...); v[len(v)/2] ^= 0xff; return v }},
		{"truncated", func(v []byte) []byte { return append([]byte(nil), v[:len(v)/2]...) }},
		{"empty", func([]byte) []byte { return []byte{} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "j.db")
			j, _ := open(t, path)
			var ids []string
			for i := range 3 {
				in := intent(i)
				in.ID = fmt.Sprintf("0000000%d-0000-7000-8000-000000000000", i) // key order = write order
				in.Draft.EventID = in.ID
				if err := j.Intend(ctx, in); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, in.ID)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketIntents)
				return b.Put([]byte(ids[1]), c.damage(b.Get([]byte(ids[1]))))
			})
			_ = db.Close()
			if err != nil {
				t.Fatal(err)
			}

			j, rec := open(t, path)
			defer j.Close()
			if len(rec.IntentsCut) != 1 || rec.IntentsCut[0].Position != 1 || rec.IntentsCut[0].Key != ids[1] || rec.IntentsPending != 2 {
				t.Fatalf("recovery: %+v", rec)
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
