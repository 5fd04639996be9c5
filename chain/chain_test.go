package chain

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type vectorFile struct {
	Vectors []struct {
		EventID           string `json:"eventId"`
		EventType         string `json:"eventType"`
		Action            string `json:"action"`
		Result            string `json:"result"`
		ResourceID        string `json:"resourceId"`
		ResourceType      string `json:"resourceType"`
		ActorType         string `json:"actorType"`
		ActorID           string `json:"actorId"`
		ActorIP           string `json:"actorIp"`
		ContextCanonical  string `json:"contextCanonical"`
		MetadataCanonical string `json:"metadataCanonical"`
		Timestamp         string `json:"timestamp"`
		Hash              string `json:"hash"`
		PreviousHash      string `json:"previousHash"`
	} `json:"vectors"`
}

// loadChainVectors reads the chain computed by Flowker's own PostgreSQL trigger.
func loadChainVectors(t *testing.T) []Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "flowker-chain-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	events := make([]Event, len(f.Vectors))
	for i, v := range f.Vectors {
		ts, err := time.Parse(time.RFC3339Nano, v.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		events[i] = Event{
			EventID: v.EventID, EventType: v.EventType, Action: v.Action, Result: v.Result,
			ResourceID: v.ResourceID, ResourceType: v.ResourceType,
			Actor:   Actor{Type: v.ActorType, ID: v.ActorID, IPAddress: v.ActorIP},
			Context: json.RawMessage(v.ContextCanonical), Metadata: json.RawMessage(v.MetadataCanonical),
			Timestamp: ts, Hash: v.Hash, PreviousHash: v.PreviousHash,
			ChainID: "flowker", Sequence: uint64(i + 1),
		}
	}
	return events
}

func TestFlowkerTriggerVectors(t *testing.T) {
	events := loadChainVectors(t)
	if len(events) != 60 {
		t.Fatalf("want 60 vectors, got %d", len(events))
	}
	for i := range events {
		e := &events[i]
		if got := e.ComputeHash(); got != e.Hash {
			t.Errorf("vector %d (%s): hash %s, Flowker's trigger computed %s\ninput: %s", i, e.EventID, got, e.Hash, e.AppendCanonicalInput(nil))
		}
		fh, err := e.FlowkerHash()
		if err != nil || fh != e.Hash {
			t.Errorf("vector %d: FlowkerHash %s %v", i, fh, err)
		}
	}
	v := NewVerifier("flowker", 1, "")
	for i := range events {
		if err := v.Add(&events[i]); err != nil {
			t.Fatalf("Flowker's own chain must verify: %v", err)
		}
	}
	if v.Checked() != 60 {
		t.Fatalf("checked %d", v.Checked())
	}
}

// The four rows of flowker-contract.md §5.5, including the backslash case where Flowker's
// text::bytea hash differs from the plain UTF-8 hash.
func TestContractVectors(t *testing.T) {
	actor := Actor{Type: ActorSystem, ID: "flowker", IPAddress: "0.0.0.0"}
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	rows := []Event{
		{EventID: "11111111-1111-4111-8111-111111111111", EventType: WorkflowCreated, Action: ActionCreate, Result: ResultSuccess,
			ResourceID: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", ResourceType: ResourceWorkflow, Actor: actor,
			Context: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"workflow.name": "Payments KYC"}`), Timestamp: ts("2026-01-02T03:04:05.123456Z"),
			Hash: "17cd125cb90ebd8d6409014795cf510cbfcd5f90003fb0e36125644fa664e051"},
		{EventID: "22222222-2222-4222-8222-222222222222", EventType: ProviderConfigCreated, Action: ActionCreate, Result: ResultSuccess,
			ResourceID: "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", ResourceType: ResourceProviderConfig, Actor: actor,
			Context: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"provider_config.name": "Tracer prod", "provider_config.provider_id": "tracer"}`),
			Timestamp: ts("2026-01-02T03:04:06Z"), Hash: "d60f1526630e1632e82ae007e801bde6287e48c487fab2983a86dc4099d6f2ea"},
		{EventID: "33333333-3333-4333-8333-333333333333", EventType: ExecutionFailed, Action: ActionExecute, Result: ResultFailed,
			ResourceID: "cccccccc-cccc-4ccc-8ccc-cccccccccccc", ResourceType: ResourceExecution, Actor: actor,
			Context: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"error": "FLK-0504", "workflow.id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}`),
			Timestamp: ts("2026-01-02T03:04:07.000001Z"), Hash: "db144f1787bdd9ea1e8df8bb86072aa51993d29c83b96d6e32164a9e2a4299dd"},
		{EventID: "44444444-4444-4444-8444-444444444444", EventType: WorkflowUpdated, Action: ActionUpdate, Result: ResultSuccess,
			ResourceID: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", ResourceType: ResourceWorkflow, Actor: actor,
			Context: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"workflow.name": "C:\\temp é"}`),
			Timestamp: ts("2026-01-02T03:04:08.5Z"), Hash: "715a08cd6095e0c0ba522689e44e57f5aa000d14257cfa32d1fd9bca24acca1d"},
	}
	for i := range rows {
		if i > 0 {
			rows[i].PreviousHash = rows[i-1].Hash
		}
		fh, err := rows[i].FlowkerHash()
		if err != nil || fh != rows[i].Hash {
			t.Errorf("row %d: Flowker-compatible hash %s (%v), want %s", i+1, fh, err, rows[i].Hash)
		}
		plain := rows[i].ComputeHash()
		if i < 3 && plain != rows[i].Hash {
			t.Errorf("row %d: plain UTF-8 hash %s, want %s (no backslash: both must agree)", i+1, plain, rows[i].Hash)
		}
		if i == 3 && plain == rows[i].Hash {
			t.Errorf("row 4 has a backslash: the plain UTF-8 hash must differ from Flowker's bytea-decoded one")
		}
	}
	if !strings.HasPrefix(string(rows[0].AppendCanonicalInput(nil)), "GENESIS|11111111-") {
		t.Fatalf("genesis input: %s", rows[0].AppendCanonicalInput(nil))
	}
}

func TestByteaDecode(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{`plain`, `plain`, false},
		{`back\\slash`, `back\slash`, false},
		{`oct\101`, `octA`, false},
		{`say \"hi\"`, ``, true},
		{`tab\t`, ``, true},
		{`\u00e9`, ``, true},
		{`trailing\`, ``, true},
		{`\400`, ``, true},
	}
	for _, tc := range tests {
		got, err := ByteaDecode([]byte(tc.in))
		if (err != nil) != tc.err || (!tc.err && string(got) != tc.want) {
			t.Errorf("ByteaDecode(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.err)
		}
		if tc.err && !errors.Is(err, ErrByteaSyntax) {
			t.Errorf("ByteaDecode(%q): error %v does not wrap ErrByteaSyntax", tc.in, err)
		}
	}
}

func TestVerifierFindsEveryKindOfDefect(t *testing.T) {
	fresh := func() []Event {
		ev := loadChainVectors(t)[:10]
		return ev
	}
	run := func(events []Event) *Problem {
		v := NewVerifier("flowker", 1, "")
		for i := range events {
			if err := v.Add(&events[i]); err != nil {
				var p *Problem
				if !errors.As(err, &p) {
					t.Fatalf("error is not a *Problem: %v", err)
				}
				return p
			}
		}
		return nil
	}
	tests := []struct {
		name   string
		mutate func([]Event) []Event
		seq    uint64
		reason Reason
	}{
		{"intact", func(e []Event) []Event { return e }, 0, ""},
		{"context edited", func(e []Event) []Event {
			e[4].Context = json.RawMessage(`{"tampered": true}`)
			return e
		}, 5, ReasonHashMismatch},
		{"one byte of metadata flipped", func(e []Event) []Event {
			m := []byte(e[6].Metadata)
			m[len(m)-2] ^= 1
			e[6].Metadata = m
			return e
		}, 7, ReasonHashMismatch},
		{"actor rewritten", func(e []Event) []Event { e[2].Actor.ID = "someone-else"; return e }, 3, ReasonHashMismatch},
		{"timestamp moved", func(e []Event) []Event { e[8].Timestamp = e[8].Timestamp.Add(time.Microsecond); return e }, 9, ReasonHashMismatch},
		{"middle event deleted", func(e []Event) []Event { return append(e[:5:5], e[6:]...) }, 6, ReasonGap},
		{"event duplicated", func(e []Event) []Event {
			out := append([]Event{}, e[:4]...)
			out = append(out, e[3])
			return append(out, e[4:]...)
		}, 4, ReasonDuplicate},
		{"rehashed after edit (link breaks)", func(e []Event) []Event {
			e[4].Context = json.RawMessage(`{"x": 1}`)
			e[4].Seal()
			return e
		}, 6, ReasonBrokenLink},
		{"foreign chain", func(e []Event) []Event { e[1].ChainID = "other"; return e }, 2, ReasonWrongChain},
		{"genesis with a link", func(e []Event) []Event {
			e[0].PreviousHash = strings.Repeat("0", 64)
			e[0].Seal()
			return e
		}, 1, ReasonBadGenesis},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := run(tc.mutate(fresh()))
			if tc.reason == "" {
				if p != nil {
					t.Fatalf("unexpected problem: %v", p)
				}
				return
			}
			if p == nil || p.Reason != tc.reason || p.Sequence != tc.seq {
				t.Fatalf("got %v, want %s at sequence %d", p, tc.reason, tc.seq)
			}
		})
	}
}

func TestEventJSONShape(t *testing.T) {
	e := loadChainVectors(t)[1]
	b := e.AppendJSON(nil)
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	// Flowker's AuditEntryOutput key order, then the additive fields.
	want := []string{`"eventId"`, `"eventType"`, `"action"`, `"result"`, `"resourceId"`, `"resourceType"`, `"actor"`,
		`"context"`, `"metadata"`, `"timestamp"`, `"hash"`, `"previousHash"`, `"chainId"`, `"sequence"`}
	last := -1
	for _, k := range want {
		i := strings.Index(string(b), k)
		if i <= last {
			t.Fatalf("key %s out of order in %s", k, b)
		}
		last = i
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// A third party can recompute the hash from the API output alone.
	if back.ComputeHash() != e.Hash {
		t.Fatalf("hash not recomputable from JSON: %s", b)
	}
}

// benchEvents returns a valid chain of events whose canonical input is about 1 KiB.
func benchEvents(n int) []Event {
	e := Event{EventID: "830c71c2-cdcc-4929-af45-e678309d6b79", EventType: WorkflowUpdated, Action: ActionUpdate, Result: ResultSuccess,
		ResourceID: "cb008853-9d2c-47ed-a13f-fe7979cb9e86", ResourceType: ResourceWorkflow,
		Actor:   Actor{Type: ActorAPIKey, ID: "key:7734d7c1c7fd", IPAddress: "203.0.113.9"},
		Context: json.RawMessage(`{"pad": "` + strings.Repeat("x", 760) + `"}`), Metadata: json.RawMessage(`{"workflow.name": "w"}`),
		Timestamp: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), ChainID: "c"}
	events := make([]Event, n)
	prev := ""
	for i := range events {
		events[i] = e
		events[i].Sequence = uint64(i + 1)
		events[i].Timestamp = e.Timestamp.Add(time.Duration(i) * time.Microsecond)
		events[i].PreviousHash = prev
		events[i].Seal()
		prev = events[i].Hash
	}
	return events
}

// BenchmarkVerify1KiB measures the verifier over ~1 KiB events (recompute + link checks);
// compare with BenchmarkSHA256Raw1KiB from the same run (make bench prints the ratio).
func BenchmarkVerify1KiB(b *testing.B) {
	events := benchEvents(4096)
	b.SetBytes(int64(len(events[0].AppendCanonicalInput(nil))))
	b.ReportAllocs()
	v, n := NewVerifier("c", 1, ""), 0
	for b.Loop() {
		if n == len(events) {
			v, n = NewVerifier("c", 1, ""), 0
		}
		if err := v.Add(&events[n]); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkSHA256Raw1KiB is the raw SHA-256 speed of this machine over the same input length.
func BenchmarkSHA256Raw1KiB(b *testing.B) {
	in := benchEvents(1)[0].AppendCanonicalInput(nil)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		_ = sha256.Sum256(in)
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 0, "plain"},
		{"a\x00b", 0, "a\uFFFDb"},
		{"bad\xffbyte", 0, "bad\uFFFDbyte"},
		{"ééé", 3, "é"},  // 6 bytes; cut at 3 would split the second é
		{"ééé", 4, "éé"}, // a whole character fits
		{strings.Repeat("x", 300), 255, strings.Repeat("x", 255)},
	} {
		got := CleanText(tc.in, tc.max)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
