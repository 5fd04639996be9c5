package exportfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func TestFindCheckpointsPicksInRangeElseNextAfter(t *testing.T) {
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)))
	evs := sinktest.GenerateChain("c", 50, sinktest.GenOptions{Seed: 1, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	var log bytes.Buffer
	for _, seq := range []uint64{5, 20, 30, 45, 40} {
		e := evs[seq-1]
		c, err := signer.Sign("c", seq, e.Hash, e.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		log.Write(append(b, '\n'))
	}
	log.WriteString("{torn")
	path := filepath.Join(t.TempDir(), "cp.ndjson")
	if err := os.WriteFile(path, log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		first, last, want uint64
		found             bool
	}{
		{10, 35, 30, true}, // newest inside the range
		{10, 15, 20, true}, // none inside: the first after it
		{46, 50, 0, false}, // none at or after
		{1, 50, 45, true},
	} {
		got, err := FindCheckpoints(path, []ChainRange{{ChainID: "c", FirstSequence: tc.first, LastSequence: tc.last}})
		if err != nil {
			t.Fatal(err)
		}
		c, ok := got["c"]
		if ok != tc.found || (ok && c.Sequence != tc.want) {
			t.Fatalf("range %d..%d: %v %d, want %v %d", tc.first, tc.last, ok, c.Sequence, tc.found, tc.want)
		}
	}
	if got, err := FindCheckpoints(filepath.Join(t.TempDir(), "absent"), []ChainRange{{ChainID: "c", FirstSequence: 1, LastSequence: 9}}); err != nil || len(got) != 0 {
		t.Fatalf("missing log: %v %v", got, err)
	}
}

// writeExport writes events as an export with the Writer.
func writeExport(t testing.TB, evs []chain.Event, contiguous bool) []byte {
	var b bytes.Buffer
	w, err := NewWriter(&b, Header{ExportedAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), SortOrder: "ASC", Contiguous: contiguous})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.Event(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzVerify: any file content is either refused with an error or verified without panicking,
// and a valid export mutated by the fuzzer never verifies as valid unless it is unchanged.
func FuzzVerify(f *testing.F) {
	evs := sinktest.GenerateChain("c", 6, sinktest.GenOptions{Seed: 2, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	good := writeExport(f, evs, true)
	f.Add(good)
	f.Add(writeExport(f, []chain.Event{evs[0], evs[2], evs[5]}, false))
	f.Add([]byte(`{"exportHeader":{"format":"flowker-audit-export","version":1}}` + "\n"))
	f.Add([]byte("{}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "x.ndjson")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Verify(path, nil, "")
		if err != nil {
			return
		}
		if res.Valid() && !bytes.Equal(data, good) && bytes.HasPrefix(data, good[:bytes.IndexByte(good, '\n')+1]) {
			// Same header, other content, still valid: only if every event line is an event of
			// the original export (reordering or dropping lines breaks counts, order or links).
			n := 0
			for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
				if bytes.HasPrefix(l, []byte(`{"export`)) {
					continue
				}
				if !bytes.Contains(good, l) {
					t.Fatalf("a changed event verified as valid: %s", l)
				}
				n++
			}
			_ = n
		}
	})
}
