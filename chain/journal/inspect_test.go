package journal

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
)

// A record damaged in the middle that every sink had acknowledged is cut, but not counted as
// lost (it is in the sinks), and the recovery says it was in the middle; one past the slowest
// sink's cursor is lost.
func TestRecoveryTellsHeldFromLost(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cursor       uint64 // the only sink's cursor
		damaged      int    // index of the damaged record
		held, lost   int
		middle       bool
		lostInMetric float64
	}{
		{name: "held by the sinks, in the middle", cursor: 10, damaged: 4, held: 1, middle: true},
		{name: "not yet delivered, in the middle", cursor: 3, damaged: 4, lost: 1, middle: true, lostInMetric: 1},
		{name: "not yet delivered, at the tail", cursor: 3, damaged: 9, lost: 1, lostInMetric: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.db")
			j, _ := open(t, path)
			var events []chain.Event
			for i := 0; i < 10; i++ {
				e, err := j.Append(context.Background(), draft(i))
				if err != nil {
					t.Fatal(err)
				}
				events = append(events, e)
			}
			if err := j.Ack(context.Background(), "store", tc.cursor); err != nil {
				t.Fatal(err)
			}
			j.Close()
			corrupt(t, path, events[tc.damaged].EventID)
			m := NewMetrics(prometheus.NewRegistry())
			j, rec := open(t, path, func(o *Options) { o.Metrics = m })
			defer j.Close()
			if rec.CutCount != 1 || rec.CutHeld != tc.held || rec.CutLost != tc.lost || rec.CutInMiddle != tc.middle {
				t.Fatalf("recovery: %+v", rec)
			}
			if got := testutil.ToFloat64(m.EventsLost.WithLabelValues("journal_corrupt")); got != tc.lostInMetric {
				t.Fatalf("events_lost_total{journal_corrupt} = %v, want %v", got, tc.lostInMetric)
			}
		})
	}
}

// Inspect never changes the file: a damaged record is reported as damage (not as a gap) and
// stays in the file for the sidecar's own recovery.
func TestInspectIsReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, _ := open(t, path)
	var events []chain.Event
	for i := 0; i < 10; i++ {
		e, _ := j.Append(context.Background(), draft(i))
		events = append(events, e)
	}
	chainID := j.ChainID()
	j.Close()
	corrupt(t, path, events[4].EventID)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	in, err := Inspect(context.Background(), path, 1, func(e *chain.Event) error {
		seqs = append(seqs, e.Sequence)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.ChainID != chainID || in.Last != 10 || in.Records != 10 || len(seqs) != 9 ||
		len(in.Damaged) != 1 || in.Damaged[0].Sequence != 5 {
		t.Fatalf("inspection %+v, sound %v", in, seqs)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("Inspect changed the journal file")
	}
	// A running sidecar holds the lock: Inspect says so instead of waiting or reading.
	j, _ = open(t, path)
	defer j.Close()
	if _, err := Inspect(context.Background(), path, 1, func(*chain.Event) error { return nil }); err == nil {
		t.Fatal("Inspect of a journal in use succeeded")
	}
}
