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
	// Table is the events table (default "audit_events"); the lookup tables are named after it,
	// so several deployments can share a database (see Layout).
	Table string `json:"table"`
	// Cluster names a cluster of the servers' remote_servers. When set, the schema is created ON
	// CLUSTER with Replicated engines ({shard}/{replica} macros) under Distributed tables, and
	// the sink reads and writes the Distributed tables (see SchemaDDL).
	Cluster string `json:"cluster"`
	// InsertQuorum, when above 0, makes every insert wait until that many replicas of the shard
	// have it (ClickHouse's insert_quorum); it needs Cluster.
	InsertQuorum int `json:"insert_quorum"`
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
	// ReadHorizon makes searches serve only events every writing sidecar has delivered:
	// "auto" (default: on with cluster, off without), "on" or "off". See watermark.go.
	ReadHorizon string `json:"read_horizon"`
	// HorizonStaleness is how long a chain may publish no watermark before the horizon leaves it
	// out (default 15s): a sidecar that is down or cut off from ClickHouse stops holding the
	// others' newest events back after this long.
	HorizonStaleness pluginconfig.Duration `json:"horizon_staleness"`
	// WatermarkInterval is the shortest time between two watermark publications of this sink
	// (default 500ms).
	WatermarkInterval pluginconfig.Duration `json:"watermark_interval"`
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
	// CertFile and KeyFile are the client certificate and key (PEM) presented to a server that
	// requires mutual TLS; both or neither.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// DefaultConfig returns the configuration used for keys that are not set.
func DefaultConfig() Config {
	return Config{
		Addr:              pluginconfig.Strings{"127.0.0.1:9000"},
		Database:          "audit",
		Table:             TableEvents,
		User:              "default",
		DialTimeout:       pluginconfig.Duration(5 * time.Second),
		ReadTimeout:       pluginconfig.Duration(60 * time.Second),
		MaxExecutionTime:  30,
		CreateSchema:      true,
		Compression:       "auto",
		ReadHorizon:       "auto",
		HorizonStaleness:  pluginconfig.Duration(15 * time.Second),
		WatermarkInterval: pluginconfig.Duration(500 * time.Millisecond),
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
	if !identRe.MatchString(cfg.Table) {
		p.Add("table", "%q is not a valid table name (letters, digits, underscore)", cfg.Table)
	}
	if cfg.Cluster != "" && !identRe.MatchString(cfg.Cluster) {
		p.Add("cluster", "%q is not a valid cluster name (letters, digits, underscore)", cfg.Cluster)
	}
	if cfg.InsertQuorum < 0 {
		p.Add("insert_quorum", "must be >= 0 replicas")
	} else if cfg.InsertQuorum > 0 && cfg.Cluster == "" {
		p.Add("insert_quorum", "needs cluster: a quorum counts replicas of replicated tables")
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
	switch cfg.ReadHorizon {
	case "auto", "on", "off":
	default:
		p.Add("read_horizon", "%q is not one of auto, on, off", cfg.ReadHorizon)
	}
	if cfg.HorizonStaleness <= 0 {
		p.Add("horizon_staleness", "must be positive")
	}
	if cfg.WatermarkInterval <= 0 {
		p.Add("watermark_interval", "must be positive")
	} else if cfg.HorizonStaleness > 0 && cfg.WatermarkInterval*4 > cfg.HorizonStaleness {
		p.Add("watermark_interval", "must be at most a quarter of horizon_staleness (%s), or live chains count as stale", time.Duration(cfg.HorizonStaleness))
	}
	switch cfg.Compression {
	case "auto", "lz4", "zstd", "none":
	default:
		p.Add("compression", "%q is not one of auto, lz4, zstd, none", cfg.Compression)
	}
	if !cfg.TLS.Enabled && (cfg.TLS.CAFile != "" || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != "" ||
		cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "") {
		p.Add("tls.enabled", "must be true when other tls options are set")
	}
	if cfg.TLS.CAFile != "" { // reading a named file is allowed to a sink.Validator
		if _, err := loadCA(cfg.TLS.CAFile); err != nil {
			p.Add("tls.ca_file", "%v", err)
		}
	}
	switch {
	case (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == ""):
		p.Add("tls.cert_file", "set both tls.cert_file and tls.key_file for a client certificate, or neither")
	case cfg.TLS.CertFile != "":
		if _, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			p.Add("tls.cert_file", "load client certificate and key: %v", err)
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

// horizon reports whether the read horizon is on (ReadHorizon "auto" means: with a cluster).
func (c *Config) horizon() bool {
	return c.ReadHorizon == "on" || (c.ReadHorizon == "auto" && c.Cluster != "")
}

// layout returns where the configured schema lives.
func (c *Config) layout() Layout {
	return Layout{Database: c.Database, Table: c.Table, Cluster: c.Cluster}
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
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate and key: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
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
