package forward

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS is the client TLS configuration of a forwarding sink.
type TLS struct {
	// CAFile is a PEM bundle of the CAs that may sign the server's certificate (default: the
	// system's roots).
	CAFile string `json:"ca_file"`
	// CertFile and KeyFile are the client certificate and key (PEM), for servers that require
	// mutual TLS. Both or neither.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// ServerName is the name the server's certificate must carry (default: the host of the
	// address or endpoint).
	ServerName string `json:"server_name"`
	// InsecureSkipVerify accepts any server certificate (tests only; never in production).
	InsecureSkipVerify bool `json:"insecure_skip_verify"`
}

// IsZero reports whether no option is set.
func (t TLS) IsZero() bool { return t == TLS{} }

// Config loads the files and returns the client configuration; host is used as the server
// name when ServerName is empty.
func (t TLS) Config(host string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
