package clickhouse

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// Config is the sink's `config:` block. Unknown keys are rejected.
type Config struct {
	// Addr lists native-protocol endpoints, "host:port" (default ["127.0.0.1:9000"]). The HTTP
	// interface is not supported: clickhouse-go's HTTP mode cannot talk to 18.16.
	Addr pluginconfig.Strings `json:"addr"`
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
	DialTimeout pluginconfig.Duration `json:"dial_timeout"`
	// ReadTimeout bounds each wait for the server (default 60s).
	ReadTimeout pluginconfig.Duration `json:"read_timeout"`
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

// DefaultConfig returns the configuration used for keys that are not set.
func DefaultConfig() Config {
	return Config{
		Addr:             pluginconfig.Strings{"127.0.0.1:9000"},
		Database:         "audit",
		User:             "default",
		DialTimeout:      pluginconfig.Duration(5 * time.Second),
		ReadTimeout:      pluginconfig.Duration(60 * time.Second),
		MaxExecutionTime: 30,
		CreateSchema:     true,
		Compression:      "auto",
	}
}

var (
	identRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	errInvalid = errors.New("invalid clickhouse sink configuration")
)

// ValidateConfig parses config (JSON) and reports every problem, each prefixed with its key.
func ValidateConfig(config []byte) error {
	_, err := parseConfig(config)
	return err
}

// parseConfig applies defaults, decodes config and validates it. The error lists every problem,
// each naming its key; it wraps errInvalid.
func parseConfig(config []byte) (Config, error) {
	cfg := DefaultConfig()
	var p pluginconfig.Problems
	pluginconfig.Decode(config, &cfg, &p)
	if len(cfg.Addr) == 0 {
		p.Add("addr", "at least one \"host:port\" is required")
	}
	for i, a := range cfg.Addr {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			p.Add(fmt.Sprintf("addr[%d]", i), "%q is not \"host:port\"", a)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.Add(fmt.Sprintf("addr[%d]", i), "invalid port %q", port)
		}
	}
	if !identRe.MatchString(cfg.Database) {
		p.Add("database", "%q is not a valid database name (letters, digits, underscore)", cfg.Database)
	}
	if cfg.User == "" {
		p.Add("user", "must not be empty")
	}
	if cfg.Password != "" && cfg.PasswordEnv != "" {
		p.Add("password_env", "set either password or password_env, not both")
	}
	if cfg.PasswordEnv != "" {
		if !envNameRe.MatchString(cfg.PasswordEnv) {
			p.Add("password_env", "%q is not an environment variable name", cfg.PasswordEnv)
		} else if _, ok := os.LookupEnv(cfg.PasswordEnv); !ok {
			p.Add("password_env", "environment variable %s is not set", cfg.PasswordEnv)
		}
	}
	if cfg.DialTimeout <= 0 {
		p.Add("dial_timeout", "must be positive")
	}
	if cfg.ReadTimeout <= 0 {
		p.Add("read_timeout", "must be positive")
	}
	if cfg.MaxExecutionTime < 0 {
		p.Add("max_execution_time", "must be >= 0 seconds")
	}
	switch cfg.Compression {
	case "auto", "lz4", "zstd", "none":
	default:
		p.Add("compression", "%q is not one of auto, lz4, zstd, none", cfg.Compression)
	}
	if !cfg.TLS.Enabled && (cfg.TLS.CAFile != "" || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != "") {
		p.Add("tls.enabled", "must be true when other tls options are set")
	}
	if cfg.TLS.CAFile != "" { // reading a named file is allowed to a sink.Validator
		if _, err := loadCA(cfg.TLS.CAFile); err != nil {
			p.Add("tls.ca_file", "%v", err)
		}
	}
	if err := p.Err("clickhouse sink config"); err != nil {
		return cfg, fmt.Errorf("%w: %w", errInvalid, err)
	}
	return cfg, nil
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
