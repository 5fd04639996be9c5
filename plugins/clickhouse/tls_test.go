package clickhouse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/internal/chtest"
	"github.com/flowker-audit/flowker-audit/internal/tlstest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestMutualTLS: a ClickHouse 18.16 server that requires a client certificate signed by its CA
// (verificationMode strict) accepts the sink with tls.cert_file and tls.key_file, and refuses it
// without them.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	files := tlstest.Generate(t)
	p, err := chtest.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	srv := chtest.Start(t, chtest.WithPorts(p[0], p[1], p[2]), chtest.WithConfig(fmt.Sprintf(`    <tcp_port_secure>%d</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>%s</certificateFile>
            <privateKeyFile>%s</privateKeyFile>
            <caConfig>%s</caConfig>
            <verificationMode>strict</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
`, p[3], files.ServerCert, files.ServerKey, files.CA)))
	secure := fmt.Sprintf("127.0.0.1:%d", p[3])
	db := newDatabase("mtls")
	tlsCfg := map[string]any{"enabled": true, "ca_file": files.CA, "server_name": tlstest.ServerName,
		"cert_file": files.ClientCert, "key_file": files.ClientKey}
	s, err := configureSink(t, map[string]any{"addr": []string{secure}, "database": db, "dial_timeout": "2s", "tls": tlsCfg})
	if err != nil {
		t.Fatalf("Configure with a client certificate: %v", err)
	}
	evs := sinktest.GenerateChain("chain-mtls", 30, sinktest.GenOptions{Seed: 41})
	if err := s.Write(ctxT(t), evs); err != nil {
		t.Fatalf("Write over mutual TLS: %v", err)
	}
	checkStored(t, s, evs)
	if n := query(t, srv, fmt.Sprintf("SELECT count() FROM %s.audit_events", db)); n != "30" {
		t.Fatalf("server holds %s rows, want 30", n)
	}

	delete(tlsCfg, "cert_file")
	delete(tlsCfg, "key_file")
	_, err = configureSink(t, map[string]any{"addr": []string{secure}, "database": newDatabase("mtls"), "dial_timeout": "2s", "tls": tlsCfg})
	if err == nil {
		t.Fatal("Configure without a client certificate succeeded against a server that requires one")
	}
	if sink.IsPermanent(err) {
		t.Errorf("a refused handshake is retryable (the certificate may be deployed later): %v", err)
	}
	// With TLS 1.3 the client learns of the refusal either as the server's "certificate
	// required" alert or as a reset connection, depending on timing; the same server accepted the
	// sink with its certificate above.
	t.Logf("without a client certificate: %v", err)
	if !strings.Contains(err.Error(), "connect to clickhouse") {
		t.Errorf("error does not say what failed: %v", err)
	}
}
