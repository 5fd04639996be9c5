package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

func TestErrorsCrossTheWire(t *testing.T) {
	c := open(t, "errors", nil)
	ctx := context.Background()
	if err := c.Configure(ctx, fmt.Appendf(nil, `{"dir": %q}`, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		chain         string
		permanent     bool
		notFound      bool
		unsupported   bool
		wantInMessage string
	}{
		{chain: "perm", permanent: true, wantInMessage: "can never be stored"},
		{chain: "retry", wantInMessage: "store temporarily unavailable"},
		{chain: "notfound", notFound: true, wantInMessage: "looking up table: not found"},
		{chain: "unsupported", unsupported: true, permanent: true, wantInMessage: ErrUnsupported.Error()},
		{chain: "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.chain, func(t *testing.T) {
			err := c.Write(ctx, testEvents(tc.chain, 1, 10))
			if tc.wantInMessage == "" {
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Write succeeded, want an error")
			}
			if got := IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.permanent)
			}
			if got := errors.Is(err, ErrNotFound); got != tc.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tc.notFound)
			}
			if got := errors.Is(err, ErrUnsupported); got != tc.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, got, tc.unsupported)
			}
			if !strings.Contains(err.Error(), tc.wantInMessage) {
				t.Errorf("error %q does not contain %q", err, tc.wantInMessage)
			}
		})
	}
}

func TestQueryRPCsWithoutQuerierAreUnsupported(t *testing.T) {
	c := open(t, "errors", nil)
	ctx := context.Background()
	caps, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if caps != (Capabilities{Write: true, Query: false}) {
		t.Errorf("Capabilities = %+v, want write only (the sink does not implement Querier)", caps)
	}
	calls := map[string]func() error{
		"Search": func() error { _, err := c.Search(ctx, Query{Limit: 10}); return err },
		"Get":    func() error { _, err := c.Get(ctx, "x"); return err },
		"ReadChain": func() error {
			return c.ReadChain(ctx, "c", 1, 0, func(*chain.Event) error { return nil })
		},
		"Chains": func() error { _, err := c.Chains(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", name, err)
		}
	}
}

func TestDeadlinePropagatesToPlugin(t *testing.T) {
	c := open(t, "errors", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	h, err := c.Head(ctx, "deadline")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Found {
		t.Fatal("the plugin saw no deadline on its context")
	}
	if h.Sequence == 0 || h.Sequence > uint64(time.Hour.Milliseconds()) {
		t.Errorf("plugin saw %d ms left, want within (0, %d]", h.Sequence, time.Hour.Milliseconds())
	}
	h, err = c.Head(context.Background(), "deadline")
	if err != nil {
		t.Fatal(err)
	}
	if h.Found {
		t.Errorf("plugin saw a deadline (%d ms) although the host set none", h.Sequence)
	}
}

func TestDeadlineAndCancellationEndPluginCall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cancel  bool
		want    error
		wantMsg []string // what the plugin's ctx.Err() may say
	}{
		// When the deadline passes, the plugin's context ends through its own copy of the
		// deadline or through the host's cancellation of the stream, whichever comes first.
		{name: "deadline", want: context.DeadlineExceeded, wantMsg: []string{"context deadline exceeded", "context canceled"}},
		{name: "cancel", cancel: true, want: context.Canceled, wantMsg: []string{"context canceled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, "errors", nil)
			if err := c.Configure(context.Background(), fmt.Appendf(nil, `{"dir": %q}`, dir)); err != nil {
				t.Fatal(err)
			}
			var ctx context.Context
			var cancel context.CancelFunc
			if tc.cancel {
				ctx, cancel = context.WithCancel(context.Background())
				go func() {
					waitFor(t, "plugin to block", func() bool {
						_, err := os.Stat(filepath.Join(dir, "blocked"))
						return err == nil
					})
					cancel()
				}()
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			}
			defer cancel()
			err := c.Write(ctx, testEvents("block", 1, 10))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Write: got %v, want %v", err, tc.want)
			}
			var pluginSaw []byte
			waitFor(t, "plugin to see its context end", func() bool {
				pluginSaw, err = os.ReadFile(filepath.Join(dir, "ctxerr"))
				return err == nil && len(pluginSaw) > 0
			})
			if !slices.Contains(tc.wantMsg, string(pluginSaw)) {
				t.Errorf("plugin's ctx.Err() = %q, want one of %q", pluginSaw, tc.wantMsg)
			}
		})
	}
}

func TestQuerierRoundTrip(t *testing.T) {
	c := open(t, "querier", nil)
	ctx := context.Background()
	events := testEvents("c1", 25, 300)
	events[3].Context = nil // empty context stays empty
	events[4].Metadata = nil
	events[3].Seal()
	events[4].Seal()
	if err := c.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	caps, err := c.Capabilities(ctx)
	if err != nil || !caps.Query || !caps.Write {
		t.Fatalf("Capabilities = %+v, %v; want write and query", caps, err)
	}

	var got []chain.Event
	if err := c.ReadChain(ctx, "c1", 1, 0, func(e *chain.Event) error {
		got = append(got, *e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, events) {
		t.Fatalf("ReadChain returned %d events that differ from the %d written", len(got), len(events))
	}
	for i := range got {
		if h := got[i].ComputeHash(); h != got[i].Hash {
			t.Errorf("event %d: hash %s does not verify after the round trip (%s)", i, got[i].Hash, h)
		}
	}

	stop := errors.New("enough")
	n := 0
	err = c.ReadChain(ctx, "c1", 5, 10, func(e *chain.Event) error {
		if e.Sequence != uint64(5+n) {
			t.Errorf("ReadChain from 5: event %d has sequence %d", n, e.Sequence)
		}
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("ReadChain with a failing callback: err %v after %d events, want %v after 3", err, n, stop)
	}

	e, err := c.Get(ctx, events[7].EventID)
	if err != nil || !reflect.DeepEqual(e, events[7]) {
		t.Errorf("Get = %+v, %v; want event 8", e, err)
	}
	if _, err := c.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) || IsPermanent(err) {
		t.Errorf("Get(missing): got %v, want ErrNotFound (not permanent)", err)
	}

	after := PositionOf(&events[9])
	page, err := c.Search(ctx, Query{
		Filter: Filter{EventType: chain.WorkflowCreated, From: events[2].Timestamp},
		Order:  Asc, After: &after, Limit: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 5 || !page.More || page.Events[0].Sequence != 11 {
		t.Errorf("Search page: %d events from %d, more=%v; want 5 from 11, more=true", len(page.Events), firstSeq(page), page.More)
	}
	if _, err := c.Search(ctx, Query{Limit: 5}); !IsPermanent(err) {
		t.Errorf("Search descending: got %v, want the plugin's permanent error", err)
	}

	chains, err := c.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []ChainInfo{{ChainID: "c1", Count: 25, First: 1, Last: 25}}; !reflect.DeepEqual(chains, want) {
		t.Errorf("Chains = %+v, want %+v", chains, want)
	}
	h, err := c.Head(ctx, "c1")
	if err != nil || h != (Head{Found: true, Sequence: 25, Hash: events[24].Hash}) {
		t.Errorf("Head = %+v, %v", h, err)
	}
}

func firstSeq(p Page) uint64 {
	if len(p.Events) == 0 {
		return 0
	}
	return p.Events[0].Sequence
}

func TestLargeBatchExceedsGRPCDefaultLimit(t *testing.T) {
	c := open(t, "querier", nil)
	ctx := context.Background()
	events := testEvents("big", 3000, 2048) // about 7 MiB, above gRPC's default 4 MiB
	if err := c.Write(ctx, events); err != nil {
		t.Fatalf("Write of a %d-event batch: %v", len(events), err)
	}
	h, err := c.Head(ctx, "big")
	if err != nil || h.Sequence != 3000 {
		t.Errorf("Head = %+v, %v; want sequence 3000", h, err)
	}
}

func TestChecksumPin(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := FileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	opts := launch(t, "errors", nil)
	opts.SHA256 = strings.ToUpper(sum)
	c, err := Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open with the right pin: %v", err)
	}
	c.Kill()

	wrong := strings.Repeat("ab", 32)
	opts.SHA256 = wrong
	_, err = Open(ctx, opts)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Open with a wrong pin: got %v, want ErrChecksumMismatch", err)
	}
	for _, want := range []string{"expected sha256 " + wrong, "got " + sum} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	opts.SHA256 = "abc"
	if _, err := Open(ctx, opts); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("Open with a malformed pin: got %v", err)
	}
}

func TestProtocolVersionMismatchIsRefused(t *testing.T) {
	_, err := Open(context.Background(), launch(t, "v2", nil))
	if !errors.Is(err, ErrProtocolVersion) {
		t.Fatalf("Open(v2 plugin): got %v, want ErrProtocolVersion", err)
	}
	for _, want := range []string{"plugin speaks protocol version 2", "host speaks version 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestPluginLogsReachHostLogger(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := open(t, "errors", log)
	dir := t.TempDir()
	if err := c.Configure(context.Background(), fmt.Appendf(nil, `{"dir": %q}`, dir)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin's log line", func() bool { return strings.Contains(buf.String(), "test sink configured") })
	var line string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "test sink configured") {
			line = l
		}
	}
	for _, want := range []string{`"level":"INFO"`, `"dir":"` + dir + `"`, `"logger":"plugin.errors`} {
		if !strings.Contains(line, want) {
			t.Errorf("re-logged line %s lacks %s", line, want)
		}
	}
}

func TestPingExitedAndKill(t *testing.T) {
	c := open(t, "errors", nil)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if c.Exited() {
		t.Fatal("Exited before Kill")
	}
	if err := c.Configure(ctx, fmt.Appendf(nil, `{"dir": %q}`, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	// The plugin exits in the middle of a call: the host sees a retryable error.
	err := c.Write(ctx, testEvents("crash", 1, 10))
	if err == nil || IsPermanent(err) {
		t.Fatalf("Write to a crashing plugin: got %v, want a retryable error", err)
	}
	waitFor(t, "Exited", c.Exited)
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping succeeded after the plugin exited")
	}
	c.Kill()
	c.Kill() // idempotent
}

func TestOpenHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, launch(t, "errors", nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: got %v", err)
	}
	if _, err := Open(context.Background(), LaunchOptions{}); err == nil {
		t.Error("Open without a path succeeded")
	}
}

func TestPluginExitsWhenHostIsKilled(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(exe)
	host.Env = append(os.Environ(), helperEnv+"=host", "GORACE=atexit_sleep_ms=0")
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	var pluginPID int
	if _, err := fmt.Fscan(out, &pluginPID); err != nil {
		host.Process.Kill()
		t.Fatalf("reading the plugin's pid from the host: %v", err)
	}
	if err := host.Process.Kill(); err != nil { // SIGKILL: the host cannot clean up
		t.Fatal(err)
	}
	_ = host.Wait()
	waitFor(t, "the orphaned plugin to exit", func() bool {
		return syscall.Kill(pluginPID, 0) != nil
	})
}
