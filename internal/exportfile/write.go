package exportfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
)

// Writer writes an export. Its memory is one event line plus one small summary per chain.
type Writer struct {
	w      io.Writer
	buf    []byte
	chains map[string]*ChainRange
	events uint64
}

// NewWriter writes h as the first line of w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = Format, Version
	if h.Filters == nil {
		h.Filters = map[string]string{}
	}
	ew := &Writer{w: w, chains: map[string]*ChainRange{}, buf: make([]byte, 0, 4096)}
	if err := ew.writeLine(line{Header: &h}); err != nil {
		return nil, err
	}
	return ew, nil
}

func (w *Writer) writeLine(l line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("export: encode: %w", err)
	}
	if _, err := w.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// Event writes one event line.
func (w *Writer) Event(e *chain.Event) error {
	w.buf = append(e.AppendJSON(w.buf[:0]), '\n')
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	w.events++
	r := w.chains[e.ChainID]
	if r == nil {
		r = &ChainRange{ChainID: e.ChainID, FirstSequence: e.Sequence, LastSequence: e.Sequence}
		w.chains[e.ChainID] = r
	}
	r.Count++
	r.FirstSequence = min(r.FirstSequence, e.Sequence)
	r.LastSequence = max(r.LastSequence, e.Sequence)
	return nil
}

// Ranges returns the chains written so far, by chain id.
func (w *Writer) Ranges() []ChainRange {
	out := make([]ChainRange, 0, len(w.chains))
	for _, r := range w.chains {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out
}

// Finish writes one chain line per chain (with the checkpoint cps holds for it, if any) and the
// end line.
func (w *Writer) Finish(cps map[string]checkpoint.Checkpoint) error {
	ranges := w.Ranges()
	for i := range ranges {
		if c, ok := cps[ranges[i].ChainID]; ok {
			ranges[i].Checkpoint = &c
		}
		if err := w.writeLine(line{Chain: &ranges[i]}); err != nil {
			return err
		}
	}
	return w.writeLine(line{End: &End{Events: w.events, Chains: len(ranges)}})
}

// FindCheckpoints reads the checkpoint log at path once and picks, for each range, the checkpoint
// described at ChainRange.Checkpoint. A missing log yields none; a damaged line is skipped (the
// verifier checks signatures, and a torn last line is normal after a crash).
func FindCheckpoints(path string, ranges []ChainRange) (map[string]checkpoint.Checkpoint, error) {
	out := map[string]checkpoint.Checkpoint{}
	if path == "" || len(ranges) == 0 {
		return out, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("export: checkpoint log: %w", err)
	}
	defer f.Close()
	want := make(map[string]ChainRange, len(ranges))
	for _, r := range ranges {
		want[r.ChainID] = r
	}
	inRange := map[string]checkpoint.Checkpoint{}
	after := map[string]checkpoint.Checkpoint{}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		b, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var c checkpoint.Checkpoint
			if json.Unmarshal(b, &c) == nil {
				if r, ok := want[c.ChainID]; ok && c.Sequence >= r.FirstSequence {
					if c.Sequence <= r.LastSequence {
						if prev, ok := inRange[c.ChainID]; !ok || c.Sequence >= prev.Sequence {
							inRange[c.ChainID] = c
						}
					} else if prev, ok := after[c.ChainID]; !ok || c.Sequence < prev.Sequence {
						after[c.ChainID] = c
					}
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("export: checkpoint log: %w", rerr)
		}
	}
	for id, c := range after {
		out[id] = c
	}
	for id, c := range inRange {
		out[id] = c
	}
	return out, nil
}
