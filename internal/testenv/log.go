package testenv

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// testLogger logs to the test's output only when FLOWKER_AUDIT_TEST_LOG is set (debug level);
// otherwise logs are discarded.
func testLogger(t testing.TB, also io.Writer) *slog.Logger {
	var hs []slog.Handler
	if os.Getenv("FLOWKER_AUDIT_TEST_LOG") != "" {
		hs = append(hs, slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if also != nil {
		hs = append(hs, slog.NewTextHandler(also, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	switch len(hs) {
	case 0:
		return slog.New(slog.DiscardHandler)
	case 1:
		return slog.New(hs[0])
	}
	return slog.New(slog.NewMultiHandler(hs...))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
