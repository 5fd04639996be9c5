package sqlite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Config is the sink's configuration, the JSON form of its `config:` block:
//
//	{"path": "./data/audit.db", "busy_timeout": "5s", "synchronous": "full", "cache_size_mib": 64}
//
// Every key is optional; unknown keys are errors.
type Config struct {
	// Path is the database file. Its directory is created when missing. Default ./data/audit.db.
	Path string
	// BusyTimeout is how long a statement waits for a lock held by another connection or process
	// before failing (the failure is retryable). Default 5s.
	BusyTimeout time.Duration
	// Synchronous is "full" (default: a Write that returned nil survives power loss) or "normal"
	// (faster; in WAL mode the last transactions may be lost on power loss, never corrupted).
	Synchronous string
	// CacheSizeMiB is the page cache budget in MiB: half for the writer connection, half shared
	// by the read connections. Default 64.
	CacheSizeMiB int
}

// Configuration defaults and limits.
const (
	DefaultPath         = "./data/audit.db"
	DefaultBusyTimeout  = 5 * time.Second
	DefaultSynchronous  = "full"
	DefaultCacheSizeMiB = 64

	maxBusyTimeout  = time.Hour
	maxCacheSizeMiB = 64 * 1024
)

// DefaultConfig returns the configuration used for keys that are not set.
func DefaultConfig() Config {
	return Config{Path: DefaultPath, BusyTimeout: DefaultBusyTimeout, Synchronous: DefaultSynchronous, CacheSizeMiB: DefaultCacheSizeMiB}
}

// ParseConfig decodes and validates a configuration. Empty input and null mean all defaults; a
// key set to null keeps its default. The error lists every problem, each prefixed with its key.
func ParseConfig(raw []byte) (Config, error) {
	cfg := DefaultConfig()
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return cfg, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return cfg, fmt.Errorf("sqlite sink config: must be a JSON object: %w", err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for _, key := range keys {
		v := fields[key]
		if string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		switch key {
		case "path":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				bad(key, "must be a string, got %s", v)
				continue
			}
			switch {
			case strings.TrimSpace(s) == "":
				bad(key, "must not be empty")
			case s == ":memory:" || strings.HasPrefix(s, "file:"):
				bad(key, "must be a file path (%q is not: the sink's connections must share one database file)", s)
			case strings.ContainsAny(s, "?\x00"):
				bad(key, "must not contain '?' or NUL: %q", s)
			default:
				cfg.Path = s
			}
		case "busy_timeout":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				bad(key, `must be a duration string such as "5s", got %s`, v)
				continue
			}
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				bad(key, `must be a duration such as "5s" or "500ms": %q`, s)
			case d < 0 || d > maxBusyTimeout:
				bad(key, "must be between 0s and %s, got %s", maxBusyTimeout, s)
			default:
				cfg.BusyTimeout = d
			}
		case "synchronous":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				bad(key, `must be "full" or "normal", got %s`, v)
				continue
			}
			switch strings.ToLower(s) {
			case "full", "normal":
				cfg.Synchronous = strings.ToLower(s)
			default:
				bad(key, `must be "full" or "normal", got %q`, s)
			}
		case "cache_size_mib":
			var n int
			if err := json.Unmarshal(v, &n); err != nil {
				bad(key, "must be a whole number of MiB, got %s", v)
				continue
			}
			if n < 1 || n > maxCacheSizeMiB {
				bad(key, "must be between 1 and %d, got %d", maxCacheSizeMiB, n)
				continue
			}
			cfg.CacheSizeMiB = n
		default:
			bad(key, "unknown key (known: path, busy_timeout, synchronous, cache_size_mib)")
		}
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("sqlite sink config: %w", errors.Join(errs...))
	}
	return cfg, nil
}
