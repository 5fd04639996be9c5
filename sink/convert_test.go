package sink

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

func roundTripEvent(t testing.TB, e chain.Event) chain.Event {
	t.Helper()
	b, err := proto.Marshal(newEventPB(&e))
	if err != nil {
		t.Fatal(err)
	}
	var p sinkpb.Event
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	var got chain.Event
	eventFromPB(&p, &got)
	return got
}

func TestEventRoundTrip(t *testing.T) {
	full := testEvents("c", 2, 100)[1]
	tests := map[string]chain.Event{
		"full":          full,
		"genesis":       testEvents("c", 1, 10)[0],
		"zero":          {},
		"empty context": {EventID: "e", Context: nil, Metadata: json.RawMessage(`{}`), Timestamp: time.Unix(0, 0).UTC()},
		"exact text": {Context: json.RawMessage(`{"a": 1.50, "b": "\u00e9<>"}`), Metadata: json.RawMessage(`{"x": [1, 2]}`),
			Timestamp: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
	}
	for name, e := range tests {
		t.Run(name, func(t *testing.T) {
			if got := roundTripEvent(t, e); !reflect.DeepEqual(got, e) {
				t.Errorf("round trip changed the event:\n got %+v\nwant %+v", got, e)
			}
		})
	}
}

func FuzzEventRoundTrip(f *testing.F) {
	f.Add("id", "WORKFLOW_CREATED", "ip", []byte(`{"a": 1}`), []byte(`{}`), int64(1767225600000000), uint64(7))
	f.Add("", "", "", []byte(nil), []byte(nil), int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, id, typ, ip string, ctxText, meta []byte, micros int64, seq uint64) {
		e := chain.Event{
			EventID: id, EventType: typ, Actor: chain.Actor{IPAddress: ip},
			Context: rawOrNil(ctxText), Metadata: rawOrNil(meta),
			Timestamp: time.UnixMicro(micros).UTC(), ChainID: typ + id, Sequence: seq,
		}
		if !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(ip) {
			return // proto3 strings must be UTF-8; chain events always are
		}
		if got := roundTripEvent(t, e); !reflect.DeepEqual(got, e) {
			t.Errorf("round trip changed the event:\n got %+v\nwant %+v", got, e)
		}
	})
}

func TestQueryRoundTrip(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]Query{
		"empty": {Limit: 50},
		"full": {
			Filter: Filter{EventType: "A", Action: "B", Result: "C", ResourceType: "D", ResourceID: "E", From: from, To: from.Add(time.Hour)},
			Order:  Asc, After: &Position{TimeMicros: 12, ChainID: "c", Sequence: 9}, Limit: 1000,
		},
		"epoch is not any": {Filter: Filter{From: time.Unix(0, 0).UTC()}, Limit: 1},
	}
	for name, q := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(queryToPB(&q))
			if err != nil {
				t.Fatal(err)
			}
			var req sinkpb.SearchRequest
			if err := proto.Unmarshal(b, &req); err != nil {
				t.Fatal(err)
			}
			if got := queryFromPB(&req); !reflect.DeepEqual(got, q) {
				t.Errorf("got %+v, want %+v", got, q)
			}
		})
	}
}
