package forward

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/chain"
)

func evs(spec ...any) []chain.Event {
	var out []chain.Event
	for i := 0; i+1 < len(spec); i += 2 {
		out = append(out, chain.Event{ChainID: spec[i].(string), Sequence: uint64(spec[i+1].(int)), Hash: spec[i].(string) + "-h"})
	}
	return out
}

func seqs(es []chain.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ChainID+":"+string(rune('0'+e.Sequence)))
	}
	return out
}

func TestHeadsFresh(t *testing.T) {
	var h Heads
	h.Delivered(evs("a", 3, "b", 1))
	for _, tc := range []struct {
		name  string
		batch []chain.Event
		want  []chain.Event
	}{
		{"all new", evs("a", 4, "a", 5), evs("a", 4, "a", 5)},
		{"all old", evs("a", 1, "a", 2, "a", 3, "b", 1), nil},
		{"overlap", evs("a", 2, "a", 3, "a", 4), evs("a", 4)},
		{"two chains mixed", evs("b", 1, "a", 4, "b", 2, "c", 1), evs("a", 4, "b", 2, "c", 1)},
		{"repeat within the batch", evs("a", 4, "a", 4, "a", 5), evs("a", 4, "a", 5)},
		{"empty", nil, nil},
	} {
		got := h.Fresh(tc.batch)
		if !slices.Equal(seqs(got), seqs(tc.want)) {
			t.Errorf("%s: Fresh = %v, want %v", tc.name, seqs(got), seqs(tc.want))
		}
	}
	h.Delivered(evs("a", 5, "a", 4))
	if hd := h.Head("a"); !hd.Found || hd.Sequence != 5 {
		t.Fatalf("Head(a) = %+v, want sequence 5", hd)
	}
	if hd := h.Head("z"); hd.Found {
		t.Fatalf("Head(z) = %+v, want not found", hd)
	}
}

func TestDecode(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type cfg struct {
		A string            `json:"a"`
		N int               `json:"n"`
		D Duration          `json:"d"`
		In inner            `json:"in"`
		M map[string]string `json:"m"`
	}
	var c cfg
	if p := Decode([]byte(`{"a": "x", "n": 3, "d": "2s", "in": {"name": "y"}, "m": {"k": "v"}}`), &c); p.Err() != nil {
		t.Fatal(p.Err())
	}
	if c.A != "x" || c.N != 3 || c.D != Duration(2e9) || c.In.Name != "y" || c.M["k"] != "v" {
		t.Fatalf("decoded %+v", c)
	}
	if p := Decode([]byte(`{"d": 1.5}`), &c); p.Err() != nil || c.D != Duration(1.5e9) {
		t.Fatalf("seconds: %v %v", p.Err(), c.D)
	}
	p := Decode([]byte(`{"a": 1, "n": "x", "d": "soon", "in": {"nme": "y"}, "zz": true}`), &c)
	got := p.Err().Error()
	for _, w := range []string{"a: want a string, got a JSON number", "n: want an integer, got a JSON string",
		`d: "soon" is not a duration`, "in.nme: unknown key (known: name)", "zz: unknown key"} {
		if !strings.Contains(got, w) {
			t.Errorf("errors %q lack %q", got, w)
		}
	}
	if len(p) != 5 {
		t.Errorf("%d problems, want 5: %v", len(p), got)
	}
	if p := Decode([]byte(`   `), &c); p != nil {
		t.Errorf("empty config: %v", p.Err())
	}
}
