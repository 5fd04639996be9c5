// Package config loads and validates the sidecar's configuration.
//
// There is one decode path: built-in defaults (Default), then the YAML file, then environment
// overrides named FLOWKER_AUDIT_ followed by the key path in upper snake case (upstream.url ->
// FLOWKER_AUDIT_UPSTREAM_URL, auth.api_keys -> FLOWKER_AUDIT_AUTH_API_KEYS, lists comma-separated).
// Unknown keys are errors. Every problem is collected and reported together, each naming its field
// path (sinks[1].config.addr: ...).
package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// CurrentVersion is the only configuration format version this build understands.
const CurrentVersion = 1

// Config is the whole configuration. Field comments are the reference documentation; config.yaml
// at the repository root repeats them for operators.
type Config struct {
	Version         int      `yaml:"version"`
	Upstream        Upstream `yaml:"upstream"`
	Listen          Listen   `yaml:"listen"`
	Admin           Admin    `yaml:"admin"`
	DataDir         string   `yaml:"data_dir"`
	Chain           Chain    `yaml:"chain"`
	Journal         Journal  `yaml:"journal"`
	Auth            Auth     `yaml:"auth"`
	Identity        Identity `yaml:"identity"`
	TrustedProxies  []string `yaml:"trusted_proxies"`
	Capture         Capture  `yaml:"capture"`
	Rules           []Rule   `yaml:"rules"`
	Watcher         Watcher  `yaml:"watcher"`
	Sinks           []Sink   `yaml:"sinks"`
	Log             Log      `yaml:"log"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Upstream is the Flowker API the sidecar forwards to.
type Upstream struct {
	URL                   string   `yaml:"url"`
	DialTimeout           Duration `yaml:"dial_timeout"`
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout"`
	MaxIdleConns          int      `yaml:"max_idle_conns"`
}

// Listen is the proxy listener (what clients call instead of Flowker).
type Listen struct {
	Addr              string   `yaml:"addr"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// BodyIdleTimeout bounds the wait for the next bytes of a request body: a client that stops
	// sending is answered 408 and its connection (and the upstream one) closed.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`
	// BodyReadTimeout bounds the reading of a whole request body, however it trickles in.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
}

// Admin is the separate listener for /metrics, /healthz and /readyz.
type Admin struct {
	Addr  string `yaml:"addr"`
	Pprof bool   `yaml:"pprof"`
}

// Chain configures the hash chain of this instance.
type Chain struct {
	// ID names this instance's chain; empty means generate one on first start and persist it in
	// data_dir. Every replica must have its own chain.
	ID string `yaml:"id"`
	// CheckpointInterval is how often the chain's head is signed (Ed25519) into checkpoint_log
	// when it moved; a final checkpoint is written at shutdown. 0 disables checkpoints.
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
	// CheckpointKey is the signing key file (the hex of an Ed25519 seed), generated on first
	// start when missing. Default: <data_dir>/checkpoint.key.
	CheckpointKey string `yaml:"checkpoint_key"`
	// CheckpointLog is the append-only NDJSON log of signed checkpoints, to ship to an external
	// witness. Default: <data_dir>/checkpoints.ndjson.
	CheckpointLog string `yaml:"checkpoint_log"`
	// CheckpointPublicKeys are earlier signing keys' public halves (64 hex characters each, or
	// files holding them), kept after a key rotation so that the checkpoints they signed still
	// verify in /verify, the page and `flowker-audit verify`.
	CheckpointPublicKeys []string `yaml:"checkpoint_public_keys"`
}

// CheckpointPaths returns the checkpoint key and log paths, defaults resolved under data_dir.
func (c *Config) CheckpointPaths() (key, log string) {
	key, log = c.Chain.CheckpointKey, c.Chain.CheckpointLog
	if key == "" {
		key = filepath.Join(c.DataDir, "checkpoint.key")
	}
	if log == "" {
		log = filepath.Join(c.DataDir, "checkpoints.ndjson")
	}
	return key, log
}

// Journal configures the durable local log between the proxy and the sinks.
type Journal struct {
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Fsync makes every group commit durable before responses are released (default true).
	Fsync bool `yaml:"fsync"`
	// FailMode applies when the journal cannot accept an event: fail_closed refuses audited
	// requests with 503 before they reach Flowker; fail_open lets them pass and counts the loss.
	// Rules may override it per route.
	FailMode       string `yaml:"fail_mode"`
	GroupCommitMax int    `yaml:"group_commit_max"`
	// CompactEvery is how often acknowledged events are removed.
	CompactEvery Duration `yaml:"compact_every"`
	// OnceRetention is how long the keys that keep idempotent execution events unique
	// (EXECUTION_STARTED once per execution id, one terminal event) are kept; 0 keeps them forever.
	// Flowker answers a replay of a finished execution with 200, which is never recorded, so the
	// keys matter only while an execution runs.
	OnceRetention Duration `yaml:"once_retention"`
}

// Auth says how callers of the audit API (GET /v1/audit-events...) and the Audit Trail page
// authenticate. With neither keys nor delegation the audit API answers 401.
type Auth struct {
	APIKeys          []string `yaml:"api_keys" secret:"true"`
	Delegate         bool     `yaml:"delegate"`
	DelegateCacheTTL Duration `yaml:"delegate_cache_ttl"`
	CursorKey        string   `yaml:"cursor_key" secret:"true"`
}

// Identity says how the actor of an audited request is established.
type Identity struct {
	// FingerprintKey keys the HMAC that turns an X-API-Key into an actor id (key:<12 hex>). Empty
	// means generate one in data_dir; set the same value on every replica so ids agree.
	FingerprintKey string            `yaml:"fingerprint_key" secret:"true"`
	APIKeyNames    map[string]string `yaml:"api_key_names"`
	// TrustedHeader names a header (e.g. X-Forwarded-User) that carries the user id, honoured only
	// when the TCP peer is one of trusted_proxies.
	TrustedHeader string `yaml:"trusted_header"`
	JWT           JWT    `yaml:"jwt"`
}

// JWT configures verification of Bearer tokens. With nothing configured the subject is read
// unverified (as Flowker itself does) and events say verified=false.
type JWT struct {
	JWKSURL       string   `yaml:"jwks_url"`
	PublicKeyFile string   `yaml:"public_key_file"`
	HMACSecret    string   `yaml:"hmac_secret" secret:"true"`
	Issuer        string   `yaml:"issuer"`
	Audience      string   `yaml:"audience"`
	JWKSRefresh   Duration `yaml:"jwks_refresh"`
}

// Capture configures what of each audited exchange goes into the event's context.
type Capture struct {
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// MaxHoldBytes bounds how much of an audited response is held before the event is written;
	// larger responses are recorded with truncated=true and no full-body hash.
	MaxHoldBytes ByteSize `yaml:"max_hold_bytes"`
	// MaxHoldTotal bounds the body bytes all audited requests in flight hold together; past it,
	// captures are cut short (the event says truncated) and bodies stream on unchanged.
	MaxHoldTotal ByteSize `yaml:"max_hold_total"`
	// RedactKeys are case-insensitive regular expressions; any JSON key (and query parameter)
	// matching one has its value replaced by "[REDACTED]". Added to the built-in list.
	RedactKeys []string `yaml:"redact_keys"`
	// RedactPaths are dot paths with * wildcards (config.*, nodes.*.data.token) redacted in every
	// captured body. Rules add their own.
	RedactPaths []string `yaml:"redact_paths"`
	// Bodies turns body capture off entirely (only sizes and hashes are kept) when false.
	Bodies bool `yaml:"bodies"`
	// KeepKeys are case-insensitive regular expressions of keys that look secret but are not
	// (matched against the whole key): their values are not redacted by name. Value shapes
	// (JWTs, PEM keys, URL credentials, cloud keys) are redacted in them all the same.
	KeepKeys []string `yaml:"keep_keys"`
	// DigestKey keys the HMAC-SHA-256 digests of bodies in events. Empty means generate one into
	// data_dir (digest.key) on first start. Set the same value on every replica.
	DigestKey string `yaml:"digest_key" secret:"true"`
	// MaxHoldAnonymous is the part of max_hold_total that requests without credentials (no API
	// key, no bearer token, no trusted identity header) may hold together; the rest is reserved
	// for authenticated requests.
	MaxHoldAnonymous ByteSize `yaml:"max_hold_anonymous"`
}

// Rule adds or overrides a route rule. A rule with the same method and path as a built-in one
// replaces it.
type Rule struct {
	Name         string              `yaml:"name"`
	Method       string              `yaml:"method"`
	Path         string              `yaml:"path"`
	Audit        *bool               `yaml:"audit"`
	Kind         string              `yaml:"kind"`
	EventType    string              `yaml:"event_type"`
	Action       string              `yaml:"action"`
	ResourceType string              `yaml:"resource_type"`
	ResourceID   []string            `yaml:"resource_id"`
	Metadata     map[string][]string `yaml:"metadata"`
	Redact       []string            `yaml:"redact"`
	FailMode     string              `yaml:"fail_mode"`
}

// Watcher polls Flowker for the outcome of executions the sidecar saw start.
type Watcher struct {
	Enabled bool `yaml:"enabled"`
	// APIKey is sent as X-API-Key when polling (use the environment: FLOWKER_AUDIT_WATCHER_API_KEY).
	APIKey string `yaml:"api_key" secret:"true"`
	// Authorization is sent verbatim as the Authorization header when set.
	Authorization string `yaml:"authorization" secret:"true"`
	// OAuth2 gets bearer tokens with the client credentials grant, renewed before they expire.
	OAuth2 WatcherOAuth2 `yaml:"oauth2"`
	// TokenFile holds a bearer token (a projected service-account token), re-read when it changes.
	TokenFile   string   `yaml:"token_file"`
	Interval    Duration `yaml:"interval"`
	MaxInterval Duration `yaml:"max_interval"`
	MaxInFlight int      `yaml:"max_in_flight"`
	GiveUpAfter Duration `yaml:"give_up_after"`
}

// WatcherOAuth2 are OAuth2 client credentials for the execution watcher (Flowker's Access
// Manager mode accepts bearer tokens only).
type WatcherOAuth2 struct {
	TokenURL string `yaml:"token_url"`
	ClientID string `yaml:"client_id"`
	// ClientSecret: use the environment (FLOWKER_AUDIT_WATCHER_OAUTH2_CLIENT_SECRET) or
	// ClientSecretFile (re-read at every token request, so a rotated secret is picked up).
	ClientSecret     string   `yaml:"client_secret" secret:"true"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	// RefreshBefore: a token is renewed this long before it expires (at most a quarter of its
	// lifetime before).
	RefreshBefore Duration `yaml:"refresh_before"`
}

// Sink is one sink plugin.
type Sink struct {
	Name   string `yaml:"name"`
	Plugin string `yaml:"plugin"`
	Query  bool   `yaml:"query"`
	SHA256 string `yaml:"sha256"`
	// Config is handed to the plugin's Configure as JSON; the plugin validates it.
	Config        map[string]any `yaml:"config"`
	BatchSize     int            `yaml:"batch_size"`
	BatchBytes    ByteSize       `yaml:"batch_bytes"`
	BatchInterval Duration       `yaml:"batch_interval"`
	WriteTimeout  Duration       `yaml:"write_timeout"`
	// Retention, when set, is how long the sink keeps events: older ones are removed in the
	// background, in whole blocks, behind a signed retention anchor, and never before every sink
	// acknowledged them. 0 keeps everything. Needs a plugin that implements sink.Retainer
	// (sqlite, clickhouse, file) and signed checkpoints (chain.checkpoint_interval > 0).
	Retention Duration `yaml:"retention"`
}

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// Duration is a time.Duration written as "250ms", "5s", "1h": the one duration type of the
// sidecar's and the plugins' configuration (sink/pluginconfig).
type Duration = pluginconfig.Duration

func parseDuration(s string) (Duration, error) { return pluginconfig.ParseDuration(s) }

// ByteSize is a size in bytes written as 65536, "64KiB", "10MB", "1GiB".
type ByteSize int64

func parseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return 0, fmt.Errorf("not a size (use e.g. 65536, 64KiB, 10MiB, 1GiB): %q", s)
	}
	return ByteSize(n * mult), nil
}
