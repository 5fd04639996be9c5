package clickhouse

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	for _, in := range []string{``, `null`, `{}`} {
		cfg, err := parseConfig([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		want := DefaultConfig()
		if cfg.Database != want.Database || !cfg.CreateSchema || cfg.Compression != "auto" ||
			len(cfg.Addr) != 1 || cfg.Addr[0] != "127.0.0.1:9000" || cfg.MaxExecutionTime != 30 {
			t.Fatalf("%q: got %+v", in, cfg)
		}
	}
}

func TestConfigValid(t *testing.T) {
	t.Setenv("TEST_CH_PASSWORD", "s3cret")
	cfg, err := parseConfig([]byte(`{
		"addr": ["ch1:9000", "ch2:9440"], "database": "audit_prod", "user": "flowker_audit",
		"password_env": "TEST_CH_PASSWORD", "tls": {"enabled": true, "server_name": "ch.internal"},
		"dial_timeout": "3s", "read_timeout": 45, "max_execution_time": 10, "create_schema": false,
		"compression": "zstd"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.password() != "s3cret" || time.Duration(cfg.DialTimeout) != 3*time.Second ||
		time.Duration(cfg.ReadTimeout) != 45*time.Second || cfg.CreateSchema || len(cfg.Addr) != 2 {
		t.Fatalf("got %+v", cfg)
	}
	tc, err := cfg.tlsConfig()
	if err != nil || tc == nil || tc.ServerName != "ch.internal" {
		t.Fatalf("tls config %+v, %v", tc, err)
	}
	// A single address may be given as a string.
	if cfg, err := parseConfig([]byte(`{"addr": "h:9000"}`)); err != nil || cfg.Addr[0] != "h:9000" {
		t.Fatalf("single addr: %+v, %v", cfg.Addr, err)
	}
}

func TestConfigProblems(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("TEST_CH_UNSET")
	for _, tc := range []struct {
		name string
		in   string
		want []string // every listed problem must appear
	}{
		{"not an object", `[1]`, []string{"must be a JSON object"}},
		{"unknown keys", `{"adress": "x", "tls": {"enable": true}}`, []string{"adress: unknown key", "tls.enable: unknown key"}},
		{"wrong types", `{"addr": 5, "create_schema": "yes", "max_execution_time": "10", "tls": []}`,
			[]string{"addr: ", "create_schema: ", "max_execution_time: ", "tls: must be a JSON object"}},
		{"bad values", `{"addr": ["nohost", "h:0", ":9000"], "database": "a-b", "user": "", "compression": "gzip", "dial_timeout": "-1s", "read_timeout": "soon", "max_execution_time": -1}`,
			[]string{"addr[0]: ", "addr[1]: invalid port", "addr[2]: ", "database: ", "user: must not be empty", "compression: ", "dial_timeout: must not be negative", "read_timeout: not a duration", "max_execution_time: must be >= 0"}},
		{"empty addr", `{"addr": []}`, []string{"addr: at least one"}},
		{"zero timeouts", `{"dial_timeout": 0, "read_timeout": "0s"}`, []string{"dial_timeout: must be positive", "read_timeout: must be positive"}},
		{"password twice", `{"password": "x", "password_env": "TEST_CH_UNSET"}`,
			[]string{"password_env: set either password or password_env", "password_env: environment variable TEST_CH_UNSET is not set"}},
		{"env name", `{"password_env": "not a name"}`, []string{"password_env: \"not a name\" is not"}},
		{"tls options without tls", `{"tls": {"insecure_skip_verify": true}}`, []string{"tls.enabled: must be true"}},
		{"ca file", `{"tls": {"enabled": true, "ca_file": "` + notPEM + `"}}`, []string{"tls.ca_file: no PEM certificate"}},
		{"missing ca file", `{"tls": {"enabled": true, "ca_file": "/nonexistent/ca.pem"}}`, []string{"tls.ca_file: read CA file"}},
		{"cluster names", `{"table": "audit-events", "cluster": "my cluster"}`, []string{"table: \"audit-events\" is not a valid table name", "cluster: \"my cluster\" is not a valid cluster name"}},
		{"quorum without cluster", `{"insert_quorum": 2}`, []string{"insert_quorum: needs cluster"}},
		{"negative quorum", `{"cluster": "c", "insert_quorum": -1}`, []string{"insert_quorum: must be >= 0"}},
		{"cert without key", `{"tls": {"enabled": true, "cert_file": "` + notPEM + `"}}`, []string{"tls.cert_file: set both tls.cert_file and tls.key_file"}},
		{"bad client cert", `{"tls": {"enabled": true, "cert_file": "` + notPEM + `", "key_file": "` + notPEM + `"}}`, []string{"tls.cert_file: load client certificate and key"}},
		{"client cert without tls", `{"tls": {"cert_file": "a", "key_file": "b"}}`, []string{"tls.enabled: must be true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateConfig([]byte(tc.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, errInvalid) {
				t.Errorf("error does not wrap errInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n"); n < len(tc.want) && tc.name != "not an object" {
				t.Errorf("error lists %d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestConfigCluster(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeClientCert(t, dir)
	cfg, err := parseConfig([]byte(`{"addr": ["ch1:9000", "ch2:9000"], "cluster": "audit_cluster", "table": "trail_a",
		"insert_quorum": 2, "tls": {"enabled": true, "cert_file": "` + certFile + `", "key_file": "` + keyFile + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.layout(); l != (Layout{Database: "audit", Table: "trail_a", Cluster: "audit_cluster"}) || cfg.InsertQuorum != 2 {
		t.Fatalf("got %+v", cfg)
	}
	tc, err := cfg.tlsConfig()
	if err != nil || len(tc.Certificates) != 1 {
		t.Fatalf("client certificate not loaded: %+v, %v", tc, err)
	}
	if def, err := parseConfig(nil); err != nil || def.layout() != DefaultLayout("audit") {
		t.Fatalf("default layout %+v, %v", def.layout(), err)
	}
}

// writeClientCert writes a self-signed certificate and its key (PEM) into dir.
func writeClientCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowker-audit"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestConfigPasswordNotInErrors(t *testing.T) {
	err := ValidateConfig([]byte(`{"password": "hunter2-secret", "user": "", "bogus": 1}`))
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("error %v leaks the password (or is missing)", err)
	}
}

func FuzzValidateConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"addr": ["h:1"]}`, `{"tls": {"enabled": true}}`, `{"dial_timeout": 1.5}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		err := ValidateConfig([]byte(in))
		if err != nil && !errors.Is(err, errInvalid) {
			t.Fatalf("error without errInvalid: %v", err)
		}
	})
}

func TestCompressionMethod(t *testing.T) {
	for _, tc := range []struct {
		compression string
		addr        []string
		want        string
	}{
		{"auto", []string{"127.0.0.1:9000"}, "none"},
		{"auto", []string{"127.0.0.2:9000", "[::1]:9000", "localhost:9000", "LOCALHOST:9440"}, "none"},
		{"auto", []string{"127.0.0.1:9000", "ch2:9000"}, "lz4"},
		{"auto", []string{"10.0.0.5:9000"}, "lz4"},
		{"auto", []string{"clickhouse:9000"}, "lz4"},
		{"auto", []string{"localhost.example.com:9000"}, "lz4"},
		{"lz4", []string{"127.0.0.1:9000"}, "lz4"},
		{"zstd", []string{"127.0.0.1:9000"}, "zstd"},
		{"none", []string{"ch.internal:9000"}, "none"},
	} {
		cfg := DefaultConfig()
		cfg.Compression, cfg.Addr = tc.compression, tc.addr
		if got := cfg.compressionMethod(); got != tc.want {
			t.Errorf("compression %q, addr %v: got %q, want %q", tc.compression, tc.addr, got, tc.want)
		}
	}
}
