package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// retainingPlugins is fakePlugins that also says which plugins can retain.
type retainingPlugins struct{ fakePlugins }

func (retainingPlugins) Retains(plugin string) bool {
	return plugin == "sqlite" || plugin == "clickhouse" || plugin == "file"
}

func TestSinkRetentionValidation(t *testing.T) {
	tests := []struct {
		name       string
		plugin     string
		retention  time.Duration
		checkpoint time.Duration
		want       string // "" valid
	}{
		{"off", "syslog", 0, time.Minute, ""},
		{"seven years on sqlite", "sqlite", 7 * 365 * 24 * time.Hour, time.Minute, ""},
		{"an hour on file", "file", time.Hour, time.Minute, ""},
		{"too short", "sqlite", 59 * time.Minute, time.Minute, "at least 1h0m0s"},
		{"negative", "sqlite", -time.Hour, time.Minute, "at least"},
		{"a plugin that cannot retain", "syslog", 24 * time.Hour, time.Minute, "the syslog plugin cannot remove events"},
		{"otlp neither", "otlp", 24 * time.Hour, time.Minute, "the otlp plugin cannot remove events"},
		{"external plugin: checked at start", "./plugins/mine", 24 * time.Hour, time.Minute, ""},
		{"without signed checkpoints", "sqlite", 24 * time.Hour, 0, "needs signed checkpoints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			extra := Sink{Name: "extra", Plugin: tc.plugin, Retention: Duration(tc.retention)}
			cfg.Sinks = append(cfg.Sinks, extra)
			cfg.Chain.CheckpointInterval = Duration(tc.checkpoint)
			errs := Validate(cfg, retainingPlugins{})
			var got []string
			for _, e := range errs {
				if strings.Contains(e.Error(), "retention") {
					got = append(got, e.Error())
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Fatalf("want valid, got %v", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want) || !strings.HasPrefix(got[0], "sinks[1].retention")):
				t.Fatalf("got %v, want one sinks[1].retention problem containing %q", got, tc.want)
			}
		})
	}
}

// TestRetentionKeyDecodes: the key reads from YAML as a duration, like every other.
func TestRetentionKeyDecodes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	yaml := "version: 1\nsinks:\n  - name: store\n    plugin: sqlite\n    query: true\n    retention: 61320h\n"
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p, Options{Lookup: func(string) (string, bool) { return "", false }, Plugins: retainingPlugins{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sinks[0].Retention.D(); got != 61320*time.Hour {
		t.Fatalf("retention = %s", got)
	}
}
