package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    Config
		wantErr []string // substrings every one of which must appear
	}{
		{name: "empty", in: ``, want: DefaultConfig()},
		{name: "null", in: `null`, want: DefaultConfig()},
		{name: "empty object", in: `{}`, want: DefaultConfig()},
		{name: "everything", in: `{"path": "/var/lib/audit/a.db", "busy_timeout": "250ms", "synchronous": "NORMAL", "cache_size_mib": 8}`,
			want: Config{Path: "/var/lib/audit/a.db", BusyTimeout: pluginconfig.Duration(250 * time.Millisecond), Synchronous: "normal", CacheSizeMiB: 8}},
		{name: "null key keeps default", in: `{"path": null, "synchronous": "full"}`, want: DefaultConfig()},
		{name: "zero busy timeout", in: `{"busy_timeout": "0s"}`, want: Config{Path: DefaultPath, BusyTimeout: 0, Synchronous: "full", CacheSizeMiB: 64}},
		{name: "not an object", in: `["path"]`, wantErr: []string{"must be a JSON object"}},
		{name: "unknown key", in: `{"paht": "x.db"}`, wantErr: []string{"paht: unknown key"}},
		{name: "every problem", in: `{"path": "", "busy_timeout": "soon", "synchronous": "off", "cache_size_mib": 0, "extra": 1}`,
			wantErr: []string{"path: must not be empty", "busy_timeout: not a duration", "synchronous: must be \"full\" or \"normal\"", "cache_size_mib: must be between 1", "extra: unknown key"}},
		{name: "wrong types", in: `{"path": 5, "busy_timeout": true, "synchronous": true, "cache_size_mib": "64"}`,
			wantErr: []string{"path: must be a string", `busy_timeout: must be a duration such as "5s" or a number of seconds`, "synchronous: must be", "cache_size_mib: must be a whole number"}},
		{name: "seconds as a number", in: `{"busy_timeout": 2}`, want: Config{Path: DefaultPath, BusyTimeout: pluginconfig.Duration(2 * time.Second), Synchronous: "full", CacheSizeMiB: 64}},
		{name: "fractional cache", in: `{"cache_size_mib": 1.5}`, wantErr: []string{"cache_size_mib: must be a whole number"}},
		{name: "negative timeout", in: `{"busy_timeout": "-1s"}`, wantErr: []string{"busy_timeout: must not be negative"}},
		{name: "memory database", in: `{"path": ":memory:"}`, wantErr: []string{"path: must be a file path"}},
		{name: "uri", in: `{"path": "file:x.db?mode=ro"}`, wantErr: []string{"path: must be a file path"}},
		{name: "question mark", in: `{"path": "a?b.db"}`, wantErr: []string{"path: must not contain '?'"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.in))
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ParseConfig(%s): %v", tc.in, err)
				}
				if got != tc.want {
					t.Fatalf("ParseConfig(%s) = %+v, want %+v", tc.in, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseConfig(%s) succeeded, want errors %q", tc.in, tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseConfig(%s) error %q does not mention %q", tc.in, err, w)
				}
			}
			if v := (&Sink{}).ValidateConfig([]byte(tc.in)); v == nil || v.Error() != err.Error() {
				t.Errorf("ValidateConfig disagrees with ParseConfig: %v", v)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"path": "x.db", "busy_timeout": "1s", "synchronous": "normal", "cache_size_mib": 4}`,
		`{"path": 1}`, `[]`, `{"busy_timeout": "-5m"}`, `{"cache_size_mib": 1e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw)
		if err != nil {
			return
		}
		// Anything accepted must be usable as is.
		switch {
		case cfg.Path == "" || strings.ContainsAny(cfg.Path, "?\x00"):
			t.Fatalf("accepted path %q", cfg.Path)
		case cfg.BusyTimeout < 0 || cfg.BusyTimeout.D() > maxBusyTimeout:
			t.Fatalf("accepted busy timeout %s", cfg.BusyTimeout)
		case cfg.Synchronous != "full" && cfg.Synchronous != "normal":
			t.Fatalf("accepted synchronous %q", cfg.Synchronous)
		case cfg.CacheSizeMiB < 1 || cfg.CacheSizeMiB > maxCacheSizeMiB:
			t.Fatalf("accepted cache size %d", cfg.CacheSizeMiB)
		}
	})
}
