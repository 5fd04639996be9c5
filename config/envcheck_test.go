package config

import (
	"strings"
	"testing"
)

func TestUnknownEnvironmentVariableNamesTheClosest(t *testing.T) {
	sinkFile := "version: 1\nsinks:\n  - name: wh\n    plugin: clickhouse\n    query: true\n    config: {addr: [\"h:9000\"], database: audit, password_env: FLOWKER_AUDIT_CH_PASSWORD}\n"
	tests := []struct {
		name    string
		file    string
		environ []string
		want    []string // substrings of the one error; empty: no error
	}{
		{"typo at the end", "version: 1\n", []string{"FLOWKER_AUDIT_UPSTREAM_URLX=http://x"},
			[]string{"FLOWKER_AUDIT_UPSTREAM_URLX", "did you mean FLOWKER_AUDIT_UPSTREAM_URL?"}},
		{"compose's old name", "version: 1\n", []string{"FLOWKER_AUDIT_API_KEYS=k"},
			[]string{"did you mean FLOWKER_AUDIT_AUTH_API_KEYS?"}},
		{"a map is file-only", "version: 1\n", []string{"FLOWKER_AUDIT_IDENTITY_API_KEY_NAMES=x"},
			[]string{"FLOWKER_AUDIT_IDENTITY_API_KEY_NAMES", "identity.api_key_names is set in the configuration file only"}},
		{"a list of structures is file-only", "version: 1\n", []string{"FLOWKER_AUDIT_SINKS=x"},
			[]string{"sinks is set in the configuration file only"}},
		{"known override", "version: 1\n", []string{"FLOWKER_AUDIT_UPSTREAM_URL=http://x:1"}, nil},
		{"config path", "version: 1\n", []string{"FLOWKER_AUDIT_CONFIG=/etc/x.yaml"}, nil},
		{"tooling variables", "version: 1\n", []string{"FLOWKER_AUDIT_TEST_LOG=1", "FLOWKER_AUDIT_BENCH_EVENTS=5", "FLOWKER_AUDIT_SKIP_CLICKHOUSE=1"}, nil},
		{"other prefixes are not ours", "version: 1\n", []string{"FLOWKER_API_KEY=x", "PATH=/bin", "flowker_audit_upstream_urlx=1"}, nil},
		{"named by a sink's *_env key", sinkFile, []string{"FLOWKER_AUDIT_CH_PASSWORD=p"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) {
				for _, kv := range tc.environ {
					if n, v, _ := strings.Cut(kv, "="); n == k {
						return v, true
					}
				}
				return "", false
			}
			_, err := Parse([]byte(tc.file), Options{Lookup: lookup, Environ: tc.environ})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			es, ok := IsErrors(err)
			if !ok || len(es) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(es[0].Error(), w) {
					t.Errorf("error %q does not contain %q", es[0].Error(), w)
				}
			}
		})
	}
}

func TestEnvNamesCoverTheReference(t *testing.T) {
	names, _ := envNames()
	for n, p := range map[string]string{"FLOWKER_AUDIT_UPSTREAM_URL": "upstream.url", "FLOWKER_AUDIT_AUTH_API_KEYS": "auth.api_keys",
		"FLOWKER_AUDIT_SHUTDOWN_TIMEOUT": "shutdown_timeout", "FLOWKER_AUDIT_JOURNAL_MAX_BYTES": "journal.max_bytes"} {
		if names[n] != p {
			t.Errorf("envNames()[%s] = %q, want %q", n, names[n], p)
		}
	}
	if _, ok := names["FLOWKER_AUDIT_SINKS"]; ok {
		t.Error("sinks is file-only")
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "abd", 1}, {"abc", "ab", 1}, {"", "ab", 2}, {"kitten", "sitting", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
