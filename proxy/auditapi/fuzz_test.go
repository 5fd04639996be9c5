package auditapi

import (
	"net/url"
	"testing"

	"github.com/flowker-audit/flowker-audit/sink"
)

// FuzzParseSearch: query-string parsing never panics, and what it accepts is within bounds.
func FuzzParseSearch(f *testing.F) {
	codec := cursorCodec{key: testCursorKey}
	valid, _ := codec.encode(cursorState{Pos: sink.Position{TimeMicros: 1, ChainID: "c", Sequence: 2}, Filter: digestFilter(sink.Filter{})})
	for _, s := range []string{
		"", "limit=5", "limit=-1", "limit=abc", "limit=1&limit=2", "sortOrder=asc", "eventType=WORKFLOW_CREATED",
		"eventType=workflow_created", "resourceId=550e8400-e29b-41d4-a716-446655440000", "resourceId=x",
		"dateFrom=2026-03-17T14:35:15.5%2B02:00&dateTo=2026-03-18T00:00:00Z", "dateFrom=2026-03-18T00:00:00Z&dateTo=2026-03-17T00:00:00Z",
		"dateTo=0001-01-01T00:00:00Z", "dateFrom=9999-12-31T23:59:59.999999999Z", "cursor=" + valid, "cursor=%zz", "a;b", "result=FAILED&action=EXECUTE",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, apiErr := parseSearch(raw, codec)
		if apiErr != nil {
			if apiErr.Status != 400 || apiErr.Code == "" || apiErr.Message == "" {
				t.Fatalf("bad error %+v", apiErr)
			}
			return
		}
		if req.Limit < 1 || req.Limit > MaxLimit {
			t.Fatalf("limit %d", req.Limit)
		}
		if req.Order != sink.Asc && req.Order != sink.Desc {
			t.Fatalf("order %d", req.Order)
		}
		if !req.Filter.From.IsZero() && !req.Filter.To.IsZero() && req.Filter.From.After(req.Filter.To.Add(1000)) {
			t.Fatalf("from %v after to %v", req.Filter.From, req.Filter.To)
		}
		if v, err := url.ParseQuery(raw); err != nil || (v.Get("cursor") == "") != (req.After == nil) {
			t.Fatalf("cursor accepted inconsistently: %v", err)
		}
	})
}

// FuzzDecodeCursor: decoding never panics; whatever decodes re-encodes to the same string.
func FuzzDecodeCursor(f *testing.F) {
	codec := cursorCodec{key: testCursorKey}
	for _, st := range []cursorState{{}, {Pos: sink.Position{TimeMicros: 1772442000000000, ChainID: "chain-a", Sequence: 7}, Order: sink.Asc}} {
		s, _ := codec.encode(st)
		f.Add(s)
		f.Add(s[:len(s)-1])
	}
	f.Add("")
	f.Add("AA")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := codec.decode(s)
		if err != nil {
			return
		}
		back, err := codec.encode(st)
		if err != nil || back != s {
			t.Fatalf("decoded %q to %+v, re-encoded %q (%v)", s, st, back, err)
		}
	})
}
