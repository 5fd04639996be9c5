package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// helperEnv makes the test binary act as a plugin (see TestMain).
const helperEnv = "FLOWKER_AUDIT_SINK_TEST_PLUGIN"

var buildDir string // binaries built once per test binary (see nullsinkPath)

var nullsinkOnce struct {
	sync.Once
	path string
	err  error
}

// nullsinkPath builds the example external plugin once per test binary.
func nullsinkPath(t testing.TB) string {
	t.Helper()
	nullsinkOnce.Do(func() {
		out := filepath.Join(buildDir, "nullsink")
		cmd := exec.Command("go", "build", "-o", out, "github.com/flowker-audit/flowker-audit/sink/examples/nullsink")
		if b, err := cmd.CombinedOutput(); err != nil {
			nullsinkOnce.err = fmt.Errorf("go build nullsink: %v\n%s", err, b)
			return
		}
		nullsinkOnce.path = out
	})
	if nullsinkOnce.err != nil {
		t.Fatal(nullsinkOnce.err)
	}
	return nullsinkOnce.path
}

func TestMain(m *testing.M) {
	switch name := os.Getenv(helperEnv); name {
	case "":
		dir, err := os.MkdirTemp("", "flowker-audit-sink-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buildDir = dir
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	case "errors":
		serve(&errSink{log: NewLogger(os.Stderr, slog.LevelDebug)}, ServeOpts{}, ProtocolVersion)
	case "querier":
		serve(&memQuerier{}, ServeOpts{}, ProtocolVersion)
	case "v2":
		serve(&errSink{log: NewLogger(os.Stderr, slog.LevelDebug)}, ServeOpts{}, 2)
	case "host":
		// A host that starts a plugin, prints its pid and waits to be killed.
		exe, _ := os.Executable()
		c, err := Open(context.Background(), LaunchOptions{Path: exe, Env: []string{helperEnv + "=errors", "GORACE=atexit_sleep_ms=0"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(c.cmd.Process.Pid)
		select {}
	default:
		fmt.Fprintf(os.Stderr, "unknown test plugin %q\n", name)
		os.Exit(2)
	}
	os.Exit(0)
}

// errSink is a test plugin whose behaviour is chosen by the chain id of the first event.
type errSink struct {
	log *slog.Logger
	dir string // marker files go here
}

func (s *errSink) Configure(_ context.Context, config []byte) error {
	var cfg struct {
		Dir string `json:"dir"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return Permanentf("decoding config: %w", err)
	}
	s.dir = cfg.Dir
	s.log.Info("test sink configured", "dir", cfg.Dir)
	return nil
}

func (s *errSink) Capabilities(context.Context) (Capabilities, error) {
	// Claims Query, but does not implement Querier: the SDK must report Query false.
	return Capabilities{Write: true, Query: true}, nil
}

func (s *errSink) mark(name, content string) {
	_ = os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o600)
}

func (s *errSink) Write(ctx context.Context, events []chain.Event) error {
	if len(events) == 0 {
		return nil
	}
	switch events[0].ChainID {
	case "perm":
		return Permanentf("event %s can never be stored", events[0].EventID)
	case "retry":
		return errors.New("store temporarily unavailable")
	case "notfound":
		return fmt.Errorf("looking up table: %w", ErrNotFound)
	case "unsupported":
		return ErrUnsupported
	case "block":
		s.mark("blocked", "")
		<-ctx.Done()
		s.mark("ctxerr", ctx.Err().Error())
		return ctx.Err()
	case "crash":
		os.Exit(3)
	}
	s.mark("written", fmt.Sprintf("%d", len(events)))
	return nil
}

func (s *errSink) Head(ctx context.Context, chainID string) (Head, error) {
	if chainID == "deadline" {
		dl, ok := ctx.Deadline()
		if !ok {
			return Head{}, nil
		}
		return Head{Found: true, Sequence: uint64(time.Until(dl).Milliseconds())}, nil
	}
	return Head{}, nil
}

func (s *errSink) Close(context.Context) error { return nil }

// memQuerier is a test plugin that keeps events in memory and answers queries.
type memQuerier struct {
	mu     sync.Mutex
	events []chain.Event
}

func (s *memQuerier) Configure(context.Context, []byte) error { return nil }
func (s *memQuerier) Capabilities(context.Context) (Capabilities, error) {
	return Capabilities{Write: true, Query: true}, nil
}

func (s *memQuerier) Write(_ context.Context, events []chain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
	return nil
}

func (s *memQuerier) Head(_ context.Context, chainID string) (Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var h Head
	for _, e := range s.events {
		if e.ChainID == chainID && e.Sequence > h.Sequence {
			h = Head{Found: true, Sequence: e.Sequence, Hash: e.Hash}
		}
	}
	return h, nil
}

func (s *memQuerier) Close(context.Context) error { return nil }

// Search answers in ascending (timestamp, chain, sequence) order, honouring EventType, After
// and Limit, which is enough to check that a query crosses the wire intact.
func (s *memQuerier) Search(_ context.Context, q Query) (Page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.Order != Asc {
		return Page{}, Permanentf("only ascending order is supported, got %s", q.Order)
	}
	var match []chain.Event
	for _, e := range s.events {
		if q.Filter.EventType != "" && e.EventType != q.Filter.EventType {
			continue
		}
		if !q.Filter.From.IsZero() && e.Timestamp.Before(q.Filter.From) {
			continue
		}
		if q.After != nil && !q.After.Less(PositionOf(&e)) {
			continue
		}
		match = append(match, e)
	}
	sort.Slice(match, func(i, j int) bool { return PositionOf(&match[i]).Less(PositionOf(&match[j])) })
	page := Page{Events: match}
	if len(match) > q.Limit {
		page = Page{Events: match[:q.Limit], More: true}
	}
	return page, nil
}

func (s *memQuerier) Get(_ context.Context, id string) (chain.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.EventID == id {
			return e, nil
		}
	}
	return chain.Event{}, fmt.Errorf("event %q: %w", id, ErrNotFound)
}

func (s *memQuerier) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	s.mu.Lock()
	events := append([]chain.Event(nil), s.events...)
	s.mu.Unlock()
	for i := range events {
		e := &events[i]
		if e.ChainID != chainID || e.Sequence < from || (to != 0 && e.Sequence > to) {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (s *memQuerier) Chains(context.Context) ([]ChainInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]*ChainInfo{}
	for _, e := range s.events {
		ci := m[e.ChainID]
		if ci == nil {
			ci = &ChainInfo{ChainID: e.ChainID, First: e.Sequence}
			m[e.ChainID] = ci
		}
		ci.Count++
		ci.First = min(ci.First, e.Sequence)
		ci.Last = max(ci.Last, e.Sequence)
	}
	var out []ChainInfo
	for _, ci := range m {
		out = append(out, *ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out, nil
}

// syncBuffer is a goroutine-safe bytes.Buffer for capturing logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// launch returns LaunchOptions that start this test binary as the named test plugin.
func launch(t testing.TB, name string, log *slog.Logger) LaunchOptions {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A race-enabled binary sleeps 1s at exit unless told otherwise.
	return LaunchOptions{Name: name, Path: exe, Env: []string{helperEnv + "=" + name, "GORACE=atexit_sleep_ms=0"}, Logger: log}
}

// open starts the named test plugin and kills it when the test ends.
func open(t *testing.T, name string, log *slog.Logger) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Open(ctx, launch(t, name, log))
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(c.Kill)
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testEvents returns n sealed, linked events of chainID with contextBytes of context.
func testEvents(chainID string, n, contextBytes int) []chain.Event {
	pad := strings.Repeat("x", max(contextBytes-40, 0))
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]chain.Event, n)
	prev := ""
	for i := range out {
		seq := uint64(i + 1)
		e := chain.Event{
			EventID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", seq),
			EventType:    chain.WorkflowCreated,
			Action:       chain.ActionCreate,
			Result:       chain.ResultSuccess,
			ResourceID:   fmt.Sprintf("wf-%d", seq),
			ResourceType: chain.ResourceWorkflow,
			Actor:        chain.Actor{Type: chain.ActorAPIKey, ID: "k1", IPAddress: "10.0.0.1"},
			Context:      json.RawMessage(fmt.Sprintf(`{"pad": "%s", "status": 201}`, pad)),
			Metadata:     json.RawMessage(`{"workflow.name": "w"}`),
			Timestamp:    base.Add(time.Duration(i) * time.Millisecond),
			PreviousHash: prev,
			ChainID:      chainID,
			Sequence:     seq,
		}
		e.Seal()
		prev = e.Hash
		out[i] = e
	}
	return out
}
