package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigIsValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.yaml"), Options{Lookup: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("the shipped config.yaml must be valid: %v", err)
	}
	if cfg.Upstream.URL != "http://127.0.0.1:4021" || cfg.DataDir != "./data" || len(cfg.Sinks) != 1 || cfg.Sinks[0].Plugin != "sqlite" {
		t.Fatalf("shipped config: %+v", cfg)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	if errs := Validate(Default(), fakePlugins{}); len(errs) > 0 {
		t.Fatal(errs)
	}
}

// fakePlugins bundles "sqlite" and "clickhouse"; its ClickHouse validator answers like an
// external plugin's, with "key: problem" lines.
type fakePlugins struct{}

func (fakePlugins) Bundled() []string {
	return []string{"clickhouse", "file", "otlp", "sqlite", "syslog"}
}

func (fakePlugins) Queryable(plugin string) bool { return plugin == "sqlite" || plugin == "clickhouse" }

func (fakePlugins) ValidateConfig(plugin string, raw []byte) (bool, error) {
	if plugin != "clickhouse" {
		return plugin == "sqlite", nil
	}
	if strings.Contains(string(raw), "not a host port") {
		return true, errors.New(`addr[0]: "not a host port" is not host:port`)
	}
	return true, nil
}

func TestThreeMistakesAllReported(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "three-mistakes.yaml"), Options{Lookup: func(string) (string, bool) { return "", false }, Plugins: fakePlugins{}})
	es, ok := IsErrors(err)
	if !ok {
		t.Fatalf("want configuration errors, got %v", err)
	}
	want := []string{"listen.adress: unknown key", "upstream.url:", "sinks[1].config.addr[0]:"}
	if len(es) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(es), len(want), es)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, es[i].Error(), w)
		}
	}
}

func TestDecodeErrorsNameTheirPath(t *testing.T) {
	tests := []struct {
		yaml, want string
	}{
		{"version: 2", "version: must be 1"},
		{"upstream: {timeout: 5s}", "upstream.timeout: unknown key"},
		{"upstream: {dial_timeout: soon}", "upstream.dial_timeout: not a duration"},
		{"journal: {max_bytes: lots}", "journal.max_bytes: not a size"},
		{"journal: {fsync: maybe}", "journal.fsync: expected true or false"},
		{"journal: {fail_mode: sometimes}", "journal.fail_mode: must be fail_closed or fail_open"},
		{"listen: [1, 2]", "listen: expected a mapping"},
		{"trusted_proxies: [10.0.0.0/8, nope]", "trusted_proxies[1]: must be an IP address or CIDR"},
		{"auth: {api_keys: [short]}", "auth.api_keys[0]: is too short"},
		{"watcher: {max_in_flight: x}", "watcher.max_in_flight: expected an integer"},
		{"rules: [{method: POST, path: /v1/x, event_type: NOPE, action: CREATE, resource_type: workflow}]", "rules[0].event_type: must be one of"},
		{"rules: [{method: POST, path: v1/x, audit: false}]", "rules[0].path: must be a path template"},
		{"rules: [{method: POST, path: /v1/x, audit: false, resource_id: [body:id]}]", "rules[0].resource_id[0]: must be path:NAME"},
		{"rules: [{method: POST, path: \"/v1/executions/{id}\", kind: execution_status}]", "rules[0].method: an execution_status rule reads a status: its method must be GET"},
		{"sinks: []", "sinks: at least one sink is required"},
		{"sinks: [{name: a, plugin: sqlite}]", "sinks: exactly one sink must have query: true"},
		{"sinks: [{name: A!, plugin: sqlite, query: true}]", "sinks[0].name: must be"},
		{"sinks: [{name: a, plugin: mongo, query: true}]", `sinks[0].plugin: unknown bundled plugin "mongo"`},
		{"sinks: [{name: a, plugin: ./bin/x, query: true, sha256: xyz}]", "sinks[0].sha256: must be 64 hexadecimal characters"},
		{"sinks: [{name: a, plugin: sqlite, query: true}, {name: a, plugin: file}]", `sinks[1].name: "a" is already used by sinks[0]`},
		{"sinks: [{name: a, plugin: syslog, query: true, config: {address: 'h:514'}}]", "sinks[0].query: the syslog plugin only writes"},
		{"sinks: [{name: a, plugin: file, query: true, config: {dir: /tmp/x}}]", "sinks[0].query: the file plugin only writes"},
		{"sinks: [{name: a, plugin: otlp, query: true, config: {endpoint: 'http://c:4317'}}]", "sinks[0].query: the otlp plugin only writes"},
		{"log: {format: xml}", "log.format: must be json or text"},
		{"identity: {api_key_names: {bob: x}}", "identity.api_key_names.bob: must be a key fingerprint"},
		{"identity: {trusted_header: X-User}", "identity.trusted_header: is only honoured from trusted_proxies"},
		{"upstream: {url: x}\nupstream: {url: y}", "upstream: defined more than once"},
		{"capture: {max_body_bytes: 64MiB}", "capture.max_body_bytes: must be at most 16MiB"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.yaml), Options{Plugins: fakePlugins{}})
		es, ok := IsErrors(err)
		if !ok {
			t.Errorf("%q: no error", tc.yaml)
			continue
		}
		found := false
		for _, e := range es {
			if strings.HasPrefix(e.Error(), tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: errors %v, want one starting with %q", tc.yaml, es, tc.want)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := map[string]string{
		"FLOWKER_AUDIT_UPSTREAM_URL":             "https://flowker.internal:4021",
		"FLOWKER_AUDIT_LISTEN_ADDR":              "0.0.0.0:8080",
		"FLOWKER_AUDIT_AUTH_API_KEYS":            "first-key-123, second-key-456",
		"FLOWKER_AUDIT_JOURNAL_MAX_BYTES":        "2GiB",
		"FLOWKER_AUDIT_JOURNAL_FSYNC":            "false",
		"FLOWKER_AUDIT_WATCHER_INTERVAL":         "2s",
		"FLOWKER_AUDIT_CAPTURE_MAX_BODY_BYTES":   "1KiB",
		"FLOWKER_AUDIT_IDENTITY_JWT_ISSUER":      "https://idp",
		"FLOWKER_AUDIT_TRUSTED_PROXIES":          "10.0.0.0/8",
		"FLOWKER_AUDIT_IDENTITY_FINGERPRINT_KEY": "fingerprint-key-0123456789",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := Parse([]byte("version: 1\nupstream: {url: http://file-wins-not:1}\n"), Options{Lookup: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.URL != "https://flowker.internal:4021" || cfg.Listen.Addr != "0.0.0.0:8080" ||
		fmt.Sprint(cfg.Auth.APIKeys) != "[first-key-123 second-key-456]" || cfg.Journal.MaxBytes != 2<<30 ||
		cfg.Journal.Fsync || cfg.Watcher.Interval.D() != 2*time.Second || cfg.Capture.MaxBodyBytes != 1024 ||
		cfg.Identity.JWT.Issuer != "https://idp" || len(cfg.TrustedProxies) != 1 || cfg.Identity.FingerprintKey != "fingerprint-key-0123456789" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
	// A bad override names both the key path and the variable.
	_, err = Parse([]byte("version: 1"), Options{Lookup: func(k string) (string, bool) {
		if k == "FLOWKER_AUDIT_JOURNAL_FSYNC" {
			return "sometimes", true
		}
		return "", false
	}})
	if err == nil || !strings.Contains(err.Error(), "journal.fsync: from FLOWKER_AUDIT_JOURNAL_FSYNC") {
		t.Fatalf("bad override: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"upstream.url": "FLOWKER_AUDIT_UPSTREAM_URL", "listen.addr": "FLOWKER_AUDIT_LISTEN_ADDR",
		"data_dir": "FLOWKER_AUDIT_DATA_DIR", "auth.api_keys": "FLOWKER_AUDIT_AUTH_API_KEYS"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p, Options{Lookup: func(string) (string, bool) { return "", false }})
	if err != nil || cfg.Listen.Addr != ":4020" {
		t.Fatalf("empty file: %v %+v", err, cfg)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), Options{}); err == nil {
		t.Fatal("a missing file must be an error")
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("..", "config.yaml"))
	f.Add(b)
	f.Add([]byte("version: 1\nsinks: [{name: a}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data, Options{}) // must never panic
	})
}

// A SQLite sink that names no path keeps its store in data_dir, as the environment sets it.
func TestSQLiteStoreFollowsDataDir(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "FLOWKER_AUDIT_DATA_DIR" {
			return "/var/lib/flowker-audit", true
		}
		return "", false
	}
	shipped, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"built-in defaults": []byte("version: 1\n"), "shipped config.yaml": shipped} {
		cfg, err := Parse(doc, Options{Lookup: lookup})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p := cfg.Sinks[0].Config["path"]; p != "/var/lib/flowker-audit/audit.db" {
			t.Errorf("%s: SQLite path %v, want it in data_dir", name, p)
		}
	}
	cfg, err := Parse([]byte("version: 1\nsinks: [{name: s, plugin: sqlite, query: true, config: {path: /elsewhere/a.db}}]\n"), Options{Lookup: lookup})
	if err != nil || cfg.Sinks[0].Config["path"] != "/elsewhere/a.db" {
		t.Fatalf("an explicit path must stay: %v %v", cfg.Sinks[0].Config, err)
	}
}
