package sink

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestNewLoggerWritesWhatGoPluginParses(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, levelTrace)
	log.Log(t.Context(), levelTrace, "tracing", "k", 1)
	log.Warn("careful", slog.Group("g", "time", "inner"), "err", "boom")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	for i, want := range []struct{ level, msg string }{{"trace", "tracing"}, {"warn", "careful"}} {
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatal(err)
		}
		if m["@level"] != want.level || m["@message"] != want.msg {
			t.Errorf("line %d: %v, want level %s message %s", i, m, want.level, want.msg)
		}
		ts, _ := m["@timestamp"].(string)
		if _, err := time.Parse(hclogTimeLayout, ts); err != nil {
			t.Errorf("line %d: @timestamp %q: %v", i, ts, err)
		}
	}
	if !strings.Contains(lines[1], `"g":{"time":"inner"}`) {
		t.Errorf("a grouped attribute named time was renamed: %s", lines[1])
	}
}

func TestHCLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "plugin")
	if got := l.GetLevel(); got != hclog.Info {
		t.Errorf("GetLevel = %v, want info", got)
	}
	if l.IsDebug() || !l.IsWarn() {
		t.Error("IsDebug/IsWarn disagree with the handler's level")
	}
	l.Debug("hidden")
	l.Named("sink").With("a", 1).Error("shown", "err", errTest("bad"), "lonely")
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("a debug line passed an info handler: %s", out)
	}
	for _, want := range []string{"level=ERROR", "msg=shown", "logger=plugin.sink", "a=1", "err=bad", "extra=lonely"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }
