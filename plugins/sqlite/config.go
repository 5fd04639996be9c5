package sqlite

import (
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// Config is the sink's configuration, the JSON form of its `config:` block:
//
//	{"path": "./data/audit.db", "busy_timeout": "5s", "synchronous": "full", "cache_size_mib": 64}
//
// Every key is optional; unknown keys are errors.
type Config struct {
	// Path is the database file. Its directory is created when missing. Default ./data/audit.db.
	Path string `json:"path"`
	// BusyTimeout is how long a statement waits for a lock held by another connection or process
	// before failing (the failure is retryable). Default 5s.
	BusyTimeout pluginconfig.Duration `json:"busy_timeout"`
	// Synchronous is "full" (default: a Write that returned nil survives power loss) or "normal"
	// (faster; in WAL mode the last transactions may be lost on power loss, never corrupted).
	Synchronous string `json:"synchronous"`
	// CacheSizeMiB is the page cache budget in MiB: half for the writer connection, half shared
	// by the read connections. Default 64.
	CacheSizeMiB int `json:"cache_size_mib"`
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
	return Config{Path: DefaultPath, BusyTimeout: pluginconfig.Duration(DefaultBusyTimeout), Synchronous: DefaultSynchronous, CacheSizeMiB: DefaultCacheSizeMiB}
}

// ParseConfig decodes and validates a configuration. Empty input and null mean all defaults; a
// key set to null keeps its default. The error lists every problem, each prefixed with its key.
func ParseConfig(raw []byte) (Config, error) {
	cfg := DefaultConfig()
	var p pluginconfig.Problems
	pluginconfig.Decode(raw, &cfg, &p)
	switch s := cfg.Path; {
	case strings.TrimSpace(s) == "":
		p.Add("path", "must not be empty")
	case s == ":memory:" || strings.HasPrefix(s, "file:"):
		p.Add("path", "must be a file path (%q is not: the sink's connections must share one database file)", s)
	case strings.ContainsAny(s, "?\x00"):
		p.Add("path", "must not contain '?' or NUL: %q", s)
	}
	if d := cfg.BusyTimeout.D(); d > maxBusyTimeout {
		p.Add("busy_timeout", "must be between 0s and %s, got %s", maxBusyTimeout, d)
	}
	switch strings.ToLower(cfg.Synchronous) {
	case "full", "normal":
		cfg.Synchronous = strings.ToLower(cfg.Synchronous)
	default:
		p.Add("synchronous", `must be "full" or "normal", got %q`, cfg.Synchronous)
	}
	if n := cfg.CacheSizeMiB; n < 1 || n > maxCacheSizeMiB {
		p.Add("cache_size_mib", "must be between 1 and %d, got %d", maxCacheSizeMiB, n)
	}
	return cfg, p.Err("sqlite sink config")
}
