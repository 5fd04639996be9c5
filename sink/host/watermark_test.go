package host

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// TestWatermarkHeartbeat: while delivery is caught up, the host sends the plugin a watermark
// every WatermarkInterval, and every watermark is true when sent: each event stamped at or before
// it is at or below the head the plugin had stored then. Bursts of appends meanwhile do not break
// it, and an idle chain's watermark passes its last event. A plugin that declines watermarks
// (ErrUnsupported) gets none.
func TestWatermarkHeartbeat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, marks := filepath.Join(dir, "log"), filepath.Join(dir, "watermarks")
	src := memsource.New("chain-wm")
	cfg := testConfig("wm", selfLaunch(t, "applog"), map[string]any{"path": path, "watermarks": marks})
	cfg.WatermarkInterval = 30 * time.Millisecond
	h := start(t, cfg, src)
	h.waitDelivered(src.Append(1, 100)) // the plugin is up
	for i := 0; i < 20; i++ {
		src.Append(1+i%7, 100)
		time.Sleep(time.Duration(i%4) * 40 * time.Millisecond) // idle gaps: heartbeats
	}
	last := src.Append(5, 100)
	h.waitDelivered(last)
	end := src.Events(last, last)[0].Timestamp.UnixMicro()
	var recs []watermarkRecord
	waitFor(t, "a watermark past the last event", func() bool {
		recs = readWatermarks(t, marks)
		return len(recs) > 0 && recs[len(recs)-1].UpTo >= end
	})
	all := src.Events(1, last)
	for _, r := range recs {
		if r.ChainID != "chain-wm" {
			t.Fatalf("watermark of chain %q", r.ChainID)
		}
		for i := range all {
			if all[i].Timestamp.UnixMicro() <= r.UpTo && all[i].Sequence > r.Head {
				t.Fatalf("watermark %d sent with head %d, but event %d (stamped %d) was not stored", r.UpTo, r.Head, all[i].Sequence, all[i].Timestamp.UnixMicro())
			}
		}
	}
	if len(recs) < 2 {
		t.Errorf("%d watermarks; the idle gaps between bursts should have sent some", len(recs))
	}
	t.Logf("%d watermarks, each true when sent", len(recs))

	t.Run("declined", func(t *testing.T) {
		dir := t.TempDir()
		src := memsource.New("chain-no-wm")
		cfg := testConfig("nowm", selfLaunch(t, "applog"), map[string]any{"path": filepath.Join(dir, "log")})
		cfg.WatermarkInterval = 20 * time.Millisecond
		h := start(t, cfg, src)
		h.waitDelivered(src.Append(3, 100))
		time.Sleep(200 * time.Millisecond)
		// One barrier Ack at most (the heartbeat that learned the answer) besides the delivery's.
		if acks := src.Acks("nowm"); len(acks) > 2 {
			t.Errorf("%d acks for one delivered batch: heartbeats go on after ErrUnsupported", len(acks))
		}
	})
}

// TestWatermarkOfANewChain: a host whose journal holds no event yet sends a watermark as soon as
// its plugin is up, before the first interval ends, so a new sidecar's chain counts in the read
// horizon before its first event is stored; the first event stamped afterwards is above it.
func TestWatermarkOfANewChain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, marks := filepath.Join(dir, "log"), filepath.Join(dir, "watermarks")
	src := memsource.New("chain-new")
	cfg := testConfig("new", selfLaunch(t, "applog"), map[string]any{"path": path, "watermarks": marks})
	cfg.WatermarkInterval = time.Hour // only the first heartbeat can be seen
	start(t, cfg, src)
	var recs []watermarkRecord
	waitFor(t, "the new chain's first watermark", func() bool {
		recs = readWatermarks(t, marks)
		return len(recs) > 0
	})
	if r := recs[0]; r.ChainID != "chain-new" || r.Head != 0 || r.UpTo <= 0 {
		t.Fatalf("first watermark %+v", r)
	}
	first := src.Append(1, 100)
	if ts := src.Events(first, first)[0].Timestamp.UnixMicro(); ts <= recs[0].UpTo {
		t.Fatalf("an event stamped %d after a watermark at %d", ts, recs[0].UpTo)
	}
}

func readWatermarks(t *testing.T, path string) []watermarkRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []watermarkRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r watermarkRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
