package clickhouse

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the sink's `config:` block. Unknown keys are rejected.
type Config struct {
	// Addr lists native-protocol endpoints, "host:port" (default ["127.0.0.1:9000"]). The HTTP
	// interface is not supported: clickhouse-go's HTTP mode cannot talk to 18.16.
	Addr []string `json:"addr"`
	// Database holds the audit tables (default "audit").
	Database string `json:"database"`
	// User is the ClickHouse user (default "default").
	User string `json:"user"`
	// Password is the user's password. Prefer PasswordEnv; never both.
	Password string `json:"password"`
	// PasswordEnv names an environment variable that holds the password.
	PasswordEnv string `json:"password_env"`
	// TLS configures an encrypted connection (the server's tcp_port_secure).
	TLS TLSConfig `json:"tls"`
	// DialTimeout bounds connecting (default 5s). JSON: a Go duration string or seconds.
	DialTimeout Duration `json:"dial_timeout"`
	// ReadTimeout bounds each wait for the server (default 60s).
	ReadTimeout Duration `json:"read_timeout"`
	// MaxExecutionTime is the server-side limit for one query, in seconds (default 30, 0 = none).
	MaxExecutionTime int `json:"max_execution_time"`
	// CreateSchema creates the database, tables and views when missing (default true). Set it
	// to false when the schema was applied by an administrator (deployments/clickhouse).
	CreateSchema bool `json:"create_schema"`
	// Compression of the native protocol: "auto" (default), "lz4", "zstd" or "none". "auto" is
	// "none" when every address is a loopback one (compressing there only spends CPU on both
	// ends: verify reads about 13% faster without it, docs/BENCHMARKS.md) and "lz4" otherwise.
	Compression string `json:"compression"`
}

// TLSConfig configures TLS to the server.
type TLSConfig struct {
	Enabled            bool   `json:"enabled"`
	CAFile             string `json:"ca_file"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
	ServerName         string `json:"server_name"`
}

// Duration is a time.Duration that decodes from "5s" or from a number of seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. \"5s\")", s)
		}
		*d = Duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s (want e.g. \"5s\" or a number of seconds)", b)
	}
	*d = Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// DefaultConfig returns the configuration used for keys that are not set.
func DefaultConfig() Config {
	return Config{
		Addr:             []string{"127.0.0.1:9000"},
		Database:         "audit",
		User:             "default",
		DialTimeout:      Duration(5 * time.Second),
		ReadTimeout:      Duration(60 * time.Second),
		MaxExecutionTime: 30,
		CreateSchema:     true,
		Compression:      "auto",
	}
}

var (
	identRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	knownKeys  = keysOf(Config{})
	knownTLS   = keysOf(TLSConfig{})
	errInvalid = errors.New("invalid clickhouse sink configuration")
)

func keysOf(v any) map[string]bool {
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

// ValidateConfig parses config (JSON) and reports every problem, each prefixed with its key.
func ValidateConfig(config []byte) error {
	_, err := parseConfig(config)
	return err
}

// parseConfig applies defaults, decodes config and validates it. The error joins one error per
// problem, each naming its key; it wraps errInvalid.
func parseConfig(config []byte) (Config, error) {
	cfg := DefaultConfig()
	var problems []string
	add := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	config = bytes.TrimSpace(config)
	if len(config) > 0 && !bytes.Equal(config, []byte("null")) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(config, &raw); err != nil {
			return cfg, fmt.Errorf("%w: not a JSON object (%s)", errInvalid, describeJSONError(err))
		}
		decodeFields(raw, knownKeys, "", add, func(key string, v json.RawMessage) error {
			switch key {
			case "addr":
				var one string
				if json.Unmarshal(v, &one) == nil {
					cfg.Addr = []string{one}
					return nil
				}
				cfg.Addr = nil
				return json.Unmarshal(v, &cfg.Addr)
			case "tls":
				var tr map[string]json.RawMessage
				if err := json.Unmarshal(v, &tr); err != nil {
					return errors.New("must be an object")
				}
				decodeFields(tr, knownTLS, "tls.", add, func(key string, v json.RawMessage) error {
					return decodeInto(&cfg.TLS, key, v)
				})
				return nil
			}
			return decodeInto(&cfg, key, v)
		})
	}

	if len(cfg.Addr) == 0 {
		add("addr", "at least one \"host:port\" is required")
	}
	for i, a := range cfg.Addr {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			add(fmt.Sprintf("addr[%d]", i), "%q is not \"host:port\"", a)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			add(fmt.Sprintf("addr[%d]", i), "invalid port %q", port)
		}
	}
	if !identRe.MatchString(cfg.Database) {
		add("database", "%q is not a valid database name (letters, digits, underscore)", cfg.Database)
	}
	if cfg.User == "" {
		add("user", "must not be empty")
	}
	if cfg.Password != "" && cfg.PasswordEnv != "" {
		add("password_env", "set either password or password_env, not both")
	}
	if cfg.PasswordEnv != "" {
		if !envNameRe.MatchString(cfg.PasswordEnv) {
			add("password_env", "%q is not an environment variable name", cfg.PasswordEnv)
		} else if _, ok := os.LookupEnv(cfg.PasswordEnv); !ok {
			add("password_env", "environment variable %s is not set", cfg.PasswordEnv)
		}
	}
	if cfg.DialTimeout <= 0 {
		add("dial_timeout", "must be positive")
	}
	if cfg.ReadTimeout <= 0 {
		add("read_timeout", "must be positive")
	}
	if cfg.MaxExecutionTime < 0 {
		add("max_execution_time", "must be >= 0 seconds")
	}
	switch cfg.Compression {
	case "auto", "lz4", "zstd", "none":
	default:
		add("compression", "%q is not one of auto, lz4, zstd, none", cfg.Compression)
	}
	if !cfg.TLS.Enabled && (cfg.TLS.CAFile != "" || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != "") {
		add("tls.enabled", "must be true when other tls options are set")
	}
	if cfg.TLS.CAFile != "" {
		if _, err := loadCA(cfg.TLS.CAFile); err != nil {
			add("tls.ca_file", "%v", err)
		}
	}
	if len(problems) > 0 {
		errs := make([]error, 0, len(problems)+1)
		errs = append(errs, errInvalid)
		for _, p := range problems {
			errs = append(errs, errors.New(p))
		}
		return cfg, errors.Join(errs...)
	}
	return cfg, nil
}

// decodeFields checks raw's keys against known (reporting each unknown key) and calls decode for
// each known key in a stable order, reporting decode errors under prefix+key.
func decodeFields(raw map[string]json.RawMessage, known map[string]bool, prefix string,
	add func(key, format string, args ...any), decode func(key string, v json.RawMessage) error) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			add(prefix+k, "unknown key")
			continue
		}
		if err := decode(k, raw[k]); err != nil {
			add(prefix+k, "%s", describeJSONError(err))
		}
	}
}

// decodeInto decodes v into the field of dst whose json tag is key.
func decodeInto(dst any, key string, v json.RawMessage) error {
	wrapped, err := json.Marshal(map[string]json.RawMessage{key: v})
	if err != nil {
		return err
	}
	return json.Unmarshal(wrapped, dst)
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return msg
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

// password returns the configured password, reading PasswordEnv when set.
func (c *Config) password() string {
	if c.PasswordEnv != "" {
		return os.Getenv(c.PasswordEnv)
	}
	return c.Password
}

// tlsConfig returns the TLS client configuration, or nil when TLS is off.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.TLS.Enabled {
		return nil, nil
	}
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLS.ServerName,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify, //nolint:gosec // explicit operator choice
	}
	if c.TLS.CAFile != "" {
		pool, err := loadCA(c.TLS.CAFile)
		if err != nil {
			return nil, err
		}
		t.RootCAs = pool
	}
	return t, nil
}

// compressionMethod resolves Compression: "auto" becomes "none" when every address names a
// loopback host (an IP in 127.0.0.0/8 or ::1, or "localhost") and "lz4" otherwise.
func (c Config) compressionMethod() string {
	if c.Compression != "auto" {
		return c.Compression
	}
	for _, a := range c.Addr {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return "lz4"
		}
		if strings.EqualFold(host, "localhost") {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return "lz4"
		}
	}
	return "none"
}
