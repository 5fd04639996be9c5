package config

import (
	"strings"
	"testing"
)

// TestAccessEvents: off by default with no sinks; on, its default sink is a SQLite store of its
// own in data_dir; its sinks are validated like sinks, and one writing into a store of sinks is
// refused (the Flowker-compatible search would show the access events).
func TestAccessEvents(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	cfg, err := Parse([]byte("version: 1\n"), Options{Lookup: none})
	if err != nil || cfg.AccessEvents.Enabled || len(cfg.AccessEvents.Sinks) != 0 || cfg.AccessEvents.MaxBytes != 64<<20 {
		t.Fatalf("defaults: %+v %v", cfg.AccessEvents, err)
	}
	cfg, err = Parse([]byte("version: 1\ndata_dir: /d\naccess_events: {enabled: true}\n"), Options{Lookup: none})
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.AccessEvents.Sinks; len(s) != 1 || s[0].Name != "access" || s[0].Plugin != "sqlite" || !s[0].Query || s[0].Config["path"] != "/d/access-events.db" {
		t.Fatalf("default access sink: %+v", s)
	}
	tests := []struct {
		name, doc, want string
	}{
		{"no query sink", "access_events: {enabled: true, sinks: [{name: a, plugin: sqlite}]}",
			"access_events.sinks: exactly one sink must have query: true"},
		{"same SQLite file", "data_dir: /d\naccess_events: {enabled: true, sinks: [{name: a, plugin: sqlite, query: true, config: {path: /d/audit.db}}]}",
			"access_events.sinks[0].config: writes where a sink of sinks writes"},
		{"bad name", "access_events: {enabled: true, sinks: [{name: A, plugin: sqlite, query: true}]}",
			"access_events.sinks[0].name: must be"},
		{"retention", "chain: {checkpoint_interval: 1m}\naccess_events: {enabled: true, sinks: [{name: a, plugin: sqlite, query: true, retention: 24h}]}",
			"access_events.sinks[0].retention: retention is not applied to the access trail's sinks"},
		{"tiny journal", "access_events: {enabled: true, max_bytes: 1000}", "access_events.max_bytes: must be at least 1MiB"},
		{"off: not checked", "access_events: {enabled: false, sinks: [{name: A, plugin: sqlite}]}", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("version: 1\n"+tc.doc+"\n"), Options{Lookup: none, Plugins: fakePlugins{}})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
