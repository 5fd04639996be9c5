package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/chtest"
)

// The tests share one ClickHouse server per test binary (start ~0.3 s, stop ~2.5 s); each sink
// gets its own database. Tests that stop the server start their own.
var (
	shared     *chtest.Server
	sharedErr  error
	databaseNo atomic.Int64
)

func TestMain(m *testing.M) {
	shared, sharedErr = chtest.Launch(chtest.WithLogf(func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}))
	code := m.Run()
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop clickhouse:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// server returns the shared server, skipping (FLOWKER_AUDIT_SKIP_CLICKHOUSE=1) or failing t when
// there is none.
func server(t testing.TB) *chtest.Server {
	t.Helper()
	if errors.Is(sharedErr, chtest.ErrSkipped) {
		t.Skipf("%v (unset it to run the ClickHouse tests)", sharedErr)
	}
	if sharedErr != nil {
		t.Fatalf("chtest: %v", sharedErr)
	}
	return shared
}

// newDatabase returns a fresh database name.
func newDatabase(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), databaseNo.Add(1))
}

// testConfig is a sink configuration for srv and database.
func testConfig(srv *chtest.Server, database string, extra map[string]any) []byte {
	cfg := map[string]any{"addr": []string{srv.Addr}, "database": database, "dial_timeout": "2s", "read_timeout": "30s"}
	for k, v := range extra {
		cfg[k] = v
	}
	b, _ := json.Marshal(cfg)
	return b
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openSink configures a sink on srv in database and closes it when t ends.
func openSink(t testing.TB, srv *chtest.Server, database string, o Options, extra map[string]any) *Sink {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s := New(o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Configure(ctx, testConfig(srv, database, extra)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// query runs sql on srv over HTTP and returns the trimmed output.
func query(t testing.TB, srv *chtest.Server, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := srv.Query(ctx, sql)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return strings.TrimSpace(out)
}
