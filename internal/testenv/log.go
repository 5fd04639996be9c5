package testenv

import (
	"log/slog"
	"os"
	"testing"
)

// testLogger logs to the test's output only when FLOWKER_AUDIT_TEST_LOG is set (debug level);
// otherwise logs are discarded.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FLOWKER_AUDIT_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
