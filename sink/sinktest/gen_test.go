package sinktest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// fromJSON converts a value decoded with UseNumber into the jsonb value model.
func fromJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		o := obj{}
		for k, x := range v {
			o[k] = fromJSON(x)
		}
		return o
	case []any:
		a := arr{}
		for _, x := range v {
			a = append(a, fromJSON(x))
		}
		return a
	case json.Number:
		return num(v)
	default:
		return v
	}
}

// recanonical parses b and renders it again; canonical text must come back unchanged.
func recanonical(t *testing.T, b []byte) []byte {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return canonical(fromJSON(v))
}

func TestJSONBRendering(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{obj{"b": 1, "a": 2, "aa": 3, "c": 4}, `{"a": 2, "b": 1, "c": 4, "aa": 3}`},
		{obj{"a": 1, "B": 2, "_": 3, "Z": 4, "0": 5}, `{"0": 5, "B": 2, "Z": 4, "_": 3, "a": 1}`},
		{obj{"é": 1, "z": 2, "ab": 3, "zz": 4}, `{"z": 2, "ab": 3, "zz": 4, "é": 1}`},
		{obj{"a": obj{"b": arr{1, obj{"d": 1, "c": arr{true}}}}, "": 0}, `{"": 0, "a": {"b": [1, {"c": [true], "d": 1}]}}`},
		{obj{}, `{}`},
		{arr{arr{1, 2}, arr{}, obj{}}, `[[1, 2], [], {}]`},
		{obj{"t": true, "f": false, "n": nil}, `{"f": false, "n": null, "t": true}`},
		{obj{"s": "quote \" backslash \\ slash / "}, `{"s": "quote \" backslash \\ slash / "}`},
		{obj{"s": "\b\f\n\r\t"}, `{"s": "\b\f\n\r\t"}`},
		{obj{"s": "\x1f\x0b\x08\x0c"}, `{"s": "\u001f\u000b\b\f"}`},
		{obj{"s": "<>&'\u2028😀"}, "{\"s\": \"<>&'\u2028😀\"}"},
		{obj{"ke\"y": 1, "k\\y": 2}, `{"k\\y": 2, "ke\"y": 1}`},
		{obj{"n": num("1.50")}, `{"n": 1.50}`},
	} {
		if got := string(canonical(tc.in)); got != tc.want {
			t.Errorf("canonical(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestGenerateChainIsValidAndRealistic(t *testing.T) {
	for _, tc := range []struct {
		chainID string
		seed    int64
	}{{"chain-a", 1}, {"chain-b", 1}, {"replica-7f3a", 99}} {
		evs := GenerateChain(tc.chainID, 2000, GenOptions{Seed: tc.seed})
		v := chain.NewVerifier(tc.chainID, 1, "")
		var ctxTotal int
		kinds := map[string]int{}
		results := map[string]int{}
		resources := map[string]int{}
		for i := range evs {
			e := &evs[i]
			if err := v.Add(e); err != nil {
				t.Fatalf("%s seed %d: event %d does not verify: %v", tc.chainID, tc.seed, i, err)
			}
			if i > 0 && !e.Timestamp.After(evs[i-1].Timestamp) {
				t.Fatalf("%s: timestamp of sequence %d not after the previous one", tc.chainID, e.Sequence)
			}
			if e.Timestamp.Location() != time.UTC || e.Timestamp.Nanosecond()%1000 != 0 {
				t.Fatalf("%s: timestamp %v is not UTC microseconds", tc.chainID, e.Timestamp)
			}
			for _, field := range []struct {
				name string
				b    []byte
			}{{"context", e.Context}, {"metadata", e.Metadata}} {
				if got := recanonical(t, field.b); !bytes.Equal(got, field.b) {
					t.Fatalf("%s#%d: %s is not canonical jsonb text:\n got %s\nwant %s", tc.chainID, e.Sequence, field.name, field.b, got)
				}
			}
			if n := len(e.Context); n < 384 || n > 3072 {
				t.Errorf("%s#%d: context is %d bytes, want roughly 0.5-2 KiB", tc.chainID, e.Sequence, n)
			}
			ctxTotal += len(e.Context)
			kinds[e.EventType]++
			results[e.Result]++
			resources[e.ResourceID]++
		}
		if mean := ctxTotal / len(evs); mean < 600 || mean > 1600 {
			t.Errorf("%s: mean context size %d bytes, want 600-1600", tc.chainID, mean)
		}
		if len(kinds) < 14 {
			t.Errorf("%s: only %d event types in 2000 events: %v", tc.chainID, len(kinds), kinds)
		}
		if results[chain.ResultFailed] == 0 || results[chain.ResultFailed] > len(evs)/4 {
			t.Errorf("%s: %d FAILED results in %d events", tc.chainID, results[chain.ResultFailed], len(evs))
		}
		var counts []int
		for id, n := range resources {
			if id != "" {
				counts = append(counts, n)
			}
		}
		sort.Sort(sort.Reverse(sort.IntSlice(counts)))
		if counts[0] < 10*counts[len(counts)/2] {
			t.Errorf("%s: resource popularity is not skewed: top %d, median %d", tc.chainID, counts[0], counts[len(counts)/2])
		}
	}
}

func TestGenerateChainDeterministic(t *testing.T) {
	a := GenerateChain("chain-a", 300, GenOptions{Seed: 5})
	b := GenerateChain("chain-a", 300, GenOptions{Seed: 5})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same chain id and seed gave different events")
	}
	if c := GenerateChain("chain-a", 1, GenOptions{Seed: 6}); c[0].Hash == a[0].Hash {
		t.Error("different seeds gave the same first event")
	}
	ids := map[string]bool{}
	for _, id := range []string{"chain-a", "chain-b"} {
		for _, e := range GenerateChain(id, 300, GenOptions{Seed: 5}) {
			if ids[e.EventID] {
				t.Fatalf("event id %s generated twice across chains of one seed", e.EventID)
			}
			ids[e.EventID] = true
		}
	}
}

func TestGenerateChainContinues(t *testing.T) {
	first := GenerateChain("chain-a", 50, GenOptions{Seed: 1})
	start := first[49].Timestamp.Add(time.Hour)
	more := GenerateChain("chain-a", 50, GenOptions{Seed: 1, After: &first[49], Start: start})
	if more[0].Sequence != 51 || more[0].Timestamp.Before(start) {
		t.Fatalf("continuation starts at sequence %d, %v; want 51 at or after %v", more[0].Sequence, more[0].Timestamp, start)
	}
	v := chain.NewVerifier("chain-a", 1, "")
	for _, e := range append(first, more...) {
		if err := v.Add(&e); err != nil {
			t.Fatalf("continued chain does not verify: %v", err)
		}
	}
}

func TestGenerateChainsShareTimestamps(t *testing.T) {
	m := newModel(GenerateChain("chain-a", 400, GenOptions{Seed: 3}), GenerateChain("chain-b", 400, GenOptions{Seed: 3}))
	if ties := crossChainTies(m); len(ties) < 5 {
		t.Fatalf("two chains with the same start share %d timestamps, want several", len(ties))
	}
}
