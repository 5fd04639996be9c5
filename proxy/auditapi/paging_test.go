package auditapi

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// pagingSuite runs the paging and filter checks against any querier holding events, with
// filterCases random combinations of filters.
func pagingSuite(t *testing.T, q sink.Querier, events []chain.Event, filterCases int) {
	env := newTestAPI(t, q, nil)
	t.Run("every event exactly once", func(t *testing.T) {
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			for _, limit := range []int{100, 37} {
				got := env.walk(t, url.Values{"sortOrder": {order.String()}, "limit": {fmt.Sprint(limit)}})
				seen := map[string]bool{}
				for _, e := range got {
					if seen[e.EventID] {
						t.Fatalf("%s limit %d: %s twice", order, limit, e.EventID)
					}
					seen[e.EventID] = true
				}
				sameIDs(t, fmt.Sprintf("%s limit %d", order, limit), got, bruteForce(events, sink.Filter{}, order))
			}
		}
	})
	t.Run("every event exactly once across actor filters", func(t *testing.T) {
		// The actor types partition the events, and so do the actor ids within a type: paging
		// through each part in both orders must return every event exactly once overall.
		ids := map[string][]string{}
		for i := range events {
			a := events[i].Actor
			if !slices.Contains(ids[a.Type], a.ID) {
				ids[a.Type] = append(ids[a.Type], a.ID)
			}
		}
		for _, order := range []sink.Order{sink.Desc, sink.Asc} {
			byType := map[string]int{}
			byID := map[string]int{}
			for _, typ := range chain.ActorTypes {
				for _, e := range env.walk(t, url.Values{"sortOrder": {order.String()}, "limit": {"41"}, "actorType": {typ}}) {
					if e.Actor.Type != typ {
						t.Fatalf("actorType=%s returned %s of type %s", typ, e.EventID, e.Actor.Type)
					}
					byType[e.EventID]++
				}
				for _, id := range ids[typ] {
					for _, e := range env.walk(t, url.Values{"sortOrder": {order.String()}, "limit": {"100"}, "actorType": {typ}, "actorId": {id}}) {
						byID[e.EventID]++
					}
				}
			}
			for _, seen := range []map[string]int{byType, byID} {
				if len(seen) != len(events) {
					t.Fatalf("%s: %d distinct events across actor filters, want %d", order, len(seen), len(events))
				}
				for id, n := range seen {
					if n != 1 {
						t.Fatalf("%s: event %s returned %d times across actor filters", order, id, n)
					}
				}
			}
		}
	})
	t.Run("combined filters match brute force", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		first, last := events[0].Timestamp, events[0].Timestamp
		for i := range events {
			if events[i].Timestamp.Before(first) {
				first = events[i].Timestamp
			}
			if events[i].Timestamp.After(last) {
				last = events[i].Timestamp
			}
		}
		span := last.Sub(first)
		for i := range filterCases {
			var f sink.Filter
			q := url.Values{}
			ref := events[rng.IntN(len(events))]
			if rng.IntN(3) == 0 {
				f.EventType = ref.EventType
				q.Set("eventType", f.EventType)
			}
			if rng.IntN(3) == 0 {
				f.Action = ref.Action
				q.Set("action", f.Action)
			}
			if rng.IntN(3) == 0 {
				f.Result = chain.Results[rng.IntN(2)]
				q.Set("result", f.Result)
			}
			if rng.IntN(3) == 0 {
				f.ResourceType = ref.ResourceType
				q.Set("resourceType", f.ResourceType)
			}
			if rng.IntN(4) == 0 {
				f.ResourceID = ref.ResourceID
				q.Set("resourceId", strings.ToUpper(f.ResourceID))
			}
			if rng.IntN(4) == 0 {
				f.ActorType = ref.Actor.Type
				q.Set("actorType", f.ActorType)
			}
			if rng.IntN(4) == 0 {
				f.ActorID = ref.Actor.ID
				q.Set("actorId", f.ActorID)
			}
			if rng.IntN(2) == 0 {
				f.From = first.Add(time.Duration(rng.Int64N(int64(span) + 1))).Truncate(time.Microsecond)
				q.Set("dateFrom", f.From.Format(time.RFC3339Nano))
			}
			if rng.IntN(2) == 0 {
				f.To = first.Add(time.Duration(rng.Int64N(int64(span) + 1))).Truncate(time.Microsecond)
				if !f.From.IsZero() && f.To.Before(f.From) {
					f.To = f.From.Add(span / 4)
				}
				q.Set("dateTo", f.To.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano))
			}
			order := sink.Order(rng.IntN(2))
			q.Set("sortOrder", strings.ToLower(order.String()))
			q.Set("limit", fmt.Sprint(20+rng.IntN(81)))
			sameIDs(t, fmt.Sprintf("case %d %s", i, q.Encode()), env.walk(t, q), bruteForce(events, f, order))
		}
	})
}

// TestPaging pages through a few thousand events of three interleaved chains in the in-memory
// store (the sqlite plugin runs the same suite in sqlite_test.go when it builds).
func TestPaging(t *testing.T) {
	events := testEvents(3000)
	pagingSuite(t, auditapitest.NewStore(events...), events, 25)
}

// TestPagingWhileWriting: events written while a client pages are neither lost nor repeated.
// Newest-first paging sees exactly the events that existed at the first page (new ones sort
// before the cursor); oldest-first paging sees all of those and some of the new ones, in order.
func TestPagingWhileWriting(t *testing.T) {
	base := testEvents(900)
	var lastA *chain.Event
	newest := base[0].Timestamp
	for i := range base {
		if base[i].ChainID == "chain-a" && (lastA == nil || base[i].Sequence > lastA.Sequence) {
			lastA = &base[i]
		}
		if base[i].Timestamp.After(newest) {
			newest = base[i].Timestamp
		}
	}
	// New events are later than every stored one, as events arriving live are.
	more := sinktest.GenerateChain("chain-a", 600, sinktest.GenOptions{Seed: 42, After: lastA, Start: newest.Add(time.Second)})
	for _, order := range []sink.Order{sink.Desc, sink.Asc} {
		t.Run(order.String(), func(t *testing.T) {
			store := auditapitest.NewStore(base...)
			env := newTestAPI(t, store, nil)
			stop := make(chan struct{})
			tick := make(chan struct{}, 1)
			var wg sync.WaitGroup
			written := make(chan int, 1)
			first := decodeList(t, env.get(t, "/v1/audit-events?limit=25&sortOrder="+order.String()))
			wg.Add(1)
			go func() { // writes a batch whenever a page was fetched, concurrently with the next fetch
				defer wg.Done()
				n := 0
				defer func() { written <- n }()
				for n < len(more) {
					select {
					case <-stop:
						return
					case <-tick:
					}
					store.Add(more[n : n+10]...)
					n += 10
				}
			}()
			got := first.Items
			cursor := first.NextCursor
			for cursor != "" {
				select {
				case tick <- struct{}{}:
				default:
				}
				l := decodeList(t, env.get(t, "/v1/audit-events?limit=25&sortOrder="+order.String()+"&cursor="+cursor))
				got = append(got, l.Items...)
				cursor = l.NextCursor
			}
			close(stop)
			wg.Wait()
			n := <-written
			t.Logf("%d events written while paging", n)
			seen := map[string]bool{}
			for i := range got {
				if seen[got[i].EventID] {
					t.Fatalf("%s seen twice", got[i].EventID)
				}
				seen[got[i].EventID] = true
				if i > 0 {
					a, b := sink.PositionOf(&got[i-1]), sink.PositionOf(&got[i])
					if (order == sink.Asc) != a.Less(b) {
						t.Fatalf("out of order at %d", i)
					}
				}
			}
			for i := range base {
				if !seen[base[i].EventID] {
					t.Fatalf("event %s lost", base[i].EventID)
				}
			}
			if order == sink.Desc && len(got) != len(base) {
				t.Fatalf("newest first returned %d events, want the %d that existed", len(got), len(base))
			}
			// Oldest first sees the new events as a prefix of what was written (none skipped).
			if order == sink.Asc {
				extra := len(got) - len(base)
				for i := range extra {
					if !seen[more[i].EventID] {
						t.Fatalf("new event %d skipped while later ones were returned", i)
					}
				}
			}
		})
	}
}

func TestCursorTampering(t *testing.T) {
	events := testEvents(300)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	const q = "limit=10&eventType=EXECUTION_STARTED&sortOrder=ASC"
	l := decodeList(t, env.get(t, "/v1/audit-events?"+q))
	if l.NextCursor == "" {
		t.Fatal("no cursor")
	}
	c := l.NextCursor
	if w := env.get(t, "/v1/audit-events?"+q+"&cursor="+c); w.Code != 200 {
		t.Fatalf("valid cursor: %d %s", w.Code, w.Body)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	other := cursorCodec{key: []byte("another-key-another-key-another-")}
	st, err := env.api.codec.decode(c)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.encode(st)
	cases := map[string]struct{ query, msg string }{
		"truncated":          {q + "&cursor=" + c[:len(c)-5], "invalid cursor"},
		"truncated to half":  {q + "&cursor=" + c[:len(c)/2], "invalid cursor"},
		"empty payload":      {q + "&cursor=AA", "invalid cursor"},
		"extended":           {q + "&cursor=" + c + "AAAA", "invalid cursor"},
		"other key":          {q + "&cursor=" + foreign, "integrity check failed"},
		"wrong version":      {q + "&cursor=" + enc(append([]byte{2}, raw[1:]...)), "unsupported cursor version 2"},
		"other sort order":   {strings.Replace(q, "ASC", "DESC", 1) + "&cursor=" + c, "sortOrder=ASC"},
		"default sort order": {"limit=10&eventType=EXECUTION_STARTED&cursor=" + c, "sortOrder=ASC"},
		"other filter":       {"limit=10&eventType=EXECUTION_COMPLETED&sortOrder=ASC&cursor=" + c, "other filters"},
		"filter dropped":     {"limit=10&sortOrder=ASC&cursor=" + c, "other filters"},
		"filter added":       {q + "&result=FAILED&cursor=" + c, "other filters"},
		"padding":            {q + "&cursor=" + c + "%3D", "invalid cursor"},
		"newline":            {q + "&cursor=" + c[:10] + "%0A" + c[10:], "invalid cursor"},
	}
	// Flip every byte of the payload in turn.
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		cases[fmt.Sprintf("byte %d flipped", i)] = struct{ query, msg string }{q + "&cursor=" + enc(b), "invalid cursor"}
	}
	for name, tc := range cases {
		w := env.get(t, "/v1/audit-events?"+tc.query)
		if w.Code != 400 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
			continue
		}
		if e := decodeError(t, w); e.Code != CodeInvalidCursor || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %+v, want FLK-0610 with %q", name, e, tc.msg)
		}
	}
	// Equivalent spellings of the same filters keep the cursor valid.
	same := "limit=10&eventType=EXECUTION_STARTED&sortOrder=asc&unknown=1"
	if w := env.get(t, "/v1/audit-events?"+same+"&cursor="+c); w.Code != 200 {
		t.Fatalf("equivalent filters: %d %s", w.Code, w.Body)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursorCodec{key: testCursorKey}
	for _, st := range []cursorState{
		{},
		{Pos: sink.Position{TimeMicros: -1, ChainID: "x", Sequence: ^uint64(0)}, Order: sink.Asc, Filter: filterDigest{1, 2, 3}},
		{Pos: sink.Position{TimeMicros: 1772442000000000, ChainID: strings.Repeat("c", maxCursorChain), Sequence: 42}},
	} {
		s, err := c.encode(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.decode(s)
		if err != nil || got != st {
			t.Fatalf("round trip %+v -> %q -> %+v, %v", st, s, got, err)
		}
	}
	if _, err := c.encode(cursorState{Pos: sink.Position{ChainID: strings.Repeat("c", maxCursorChain+1)}}); err == nil {
		t.Fatal("oversized chain id encoded")
	}
}

func TestCursorAtContinuesAfterThePosition(t *testing.T) {
	events := testEvents(60)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	for _, order := range []sink.Order{sink.Desc, sink.Asc} {
		all := bruteForce(events, sink.Filter{}, order)
		for _, k := range []int{0, 17, len(all) - 2} {
			cur, err := env.api.CursorAt(sink.PositionOf(&all[k]), order)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeList(t, env.get(t, "/v1/audit-events?"+url.Values{"sortOrder": {order.String()}, "limit": {"5"}, "cursor": {cur}}.Encode()))
			sameIDs(t, fmt.Sprintf("%s after event %d", order, k), got.Items, all[k+1:min(k+6, len(all))])
		}
		cur, _ := env.api.CursorAt(sink.PositionOf(&all[0]), order)
		if w := env.get(t, "/v1/audit-events?"+url.Values{"sortOrder": {order.String()}, "eventType": {"x"}, "cursor": {cur}}.Encode()); w.Code != 400 {
			t.Errorf("%s: a CursorAt cursor used with a filter: status %d, want 400", order, w.Code)
		}
	}
}
