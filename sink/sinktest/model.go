package sinktest

import (
	"bytes"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// model is the brute-force reference for Search: every stored event, sorted ascending by
// (timestamp µs, chainId, sequence).
type model struct {
	asc []chain.Event
}

func newModel(chains ...[]chain.Event) *model {
	m := &model{}
	for _, c := range chains {
		m.asc = append(m.asc, c...)
	}
	sort.Slice(m.asc, func(i, j int) bool {
		return sink.PositionOf(&m.asc[i]).Less(sink.PositionOf(&m.asc[j]))
	})
	return m
}

// search answers q by scanning every event. limit < 0 means no limit.
func (m *model) search(q sink.Query, limit int) (events []chain.Event, more bool) {
	n := len(m.asc)
	for i := range n {
		e := &m.asc[i]
		if q.Order == sink.Desc {
			e = &m.asc[n-1-i]
		}
		if !q.Filter.Matches(e) {
			continue
		}
		if q.After != nil {
			p := sink.PositionOf(e)
			if q.Order == sink.Desc && !p.Less(*q.After) || q.Order == sink.Asc && !q.After.Less(p) {
				continue
			}
		}
		if limit >= 0 && len(events) == limit {
			return events, true
		}
		events = append(events, *e)
	}
	return events, false
}

// diffEvent describes the first field in which got differs from want ("" when equal).
// Context and metadata must be byte-identical: they are hashed.
func diffEvent(want, got *chain.Event) string {
	type field struct {
		name      string
		want, got string
	}
	for _, f := range []field{
		{"chainId", want.ChainID, got.ChainID},
		{"sequence", fmt.Sprint(want.Sequence), fmt.Sprint(got.Sequence)},
		{"eventId", want.EventID, got.EventID},
		{"eventType", want.EventType, got.EventType},
		{"action", want.Action, got.Action},
		{"result", want.Result, got.Result},
		{"resourceId", want.ResourceID, got.ResourceID},
		{"resourceType", want.ResourceType, got.ResourceType},
		{"actor.type", want.Actor.Type, got.Actor.Type},
		{"actor.id", want.Actor.ID, got.Actor.ID},
		{"actor.ipAddress", want.Actor.IPAddress, got.Actor.IPAddress},
		{"hash", want.Hash, got.Hash},
		{"previousHash", want.PreviousHash, got.PreviousHash},
	} {
		if f.want != f.got {
			return fmt.Sprintf("%s is %q, want %q", f.name, f.got, f.want)
		}
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Sprintf("timestamp is %s, want %s", got.Timestamp.Format(chain.TimestampLayout), want.Timestamp.UTC().Format(chain.TimestampLayout))
	}
	if !bytes.Equal(got.Context, want.Context) {
		return fmt.Sprintf("context is not byte-identical: %s", firstByteDiff(want.Context, got.Context))
	}
	if !bytes.Equal(got.Metadata, want.Metadata) {
		return fmt.Sprintf("metadata is not byte-identical: %s", firstByteDiff(want.Metadata, got.Metadata))
	}
	return ""
}

func firstByteDiff(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	excerpt := func(b []byte) string {
		lo, hi := max(0, i-20), min(len(b), i+20)
		for lo > 0 && !utf8.RuneStart(b[lo]) {
			lo--
		}
		return fmt.Sprintf("%q", b[lo:hi])
	}
	return fmt.Sprintf("first difference at byte %d (len got %d, want %d): got …%s…, want …%s…", i, len(got), len(want), excerpt(got), excerpt(want))
}

func fmtPos(p *sink.Position) string {
	if p == nil {
		return "start"
	}
	return fmt.Sprintf("(%d, %q, %d)", p.TimeMicros, p.ChainID, p.Sequence)
}

func fmtEvent(e *chain.Event) string {
	return fmt.Sprintf("%s#%d@%d", e.ChainID, e.Sequence, e.Timestamp.UnixMicro())
}

// diffEvents compares two event lists and describes the first difference ("" when equal).
func diffEvents(want, got []chain.Event) string {
	for i := 0; i < len(want) && i < len(got); i++ {
		if want[i].ChainID != got[i].ChainID || want[i].Sequence != got[i].Sequence {
			return fmt.Sprintf("event %d is %s, want %s", i, fmtEvent(&got[i]), fmtEvent(&want[i]))
		}
		if d := diffEvent(&want[i], &got[i]); d != "" {
			return fmt.Sprintf("event %d (%s): %s", i, fmtEvent(&want[i]), d)
		}
	}
	switch {
	case len(got) > len(want):
		return fmt.Sprintf("got %d events, want %d; first extra is %s", len(got), len(want), fmtEvent(&got[len(want)]))
	case len(got) < len(want):
		return fmt.Sprintf("got %d events, want %d; first missing is %s", len(got), len(want), fmtEvent(&want[len(got)]))
	}
	return ""
}
