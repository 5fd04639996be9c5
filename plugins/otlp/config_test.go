package otlp

import (
	"testing"

	"github.com/flowker-audit/flowker-audit/plugins/internal/forwardtest"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"endpoint": "http://collector:4318", "protocol": "http"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.url.String() != "http://collector:4318/v1/logs" || c.Compression != "none" || c.ServiceName != DefaultServiceName ||
		c.MaxRequestBytes != DefaultMaxRequestBytes || c.replay != DefaultReplayOnReconnect || !c.checkpoints {
		t.Fatalf("defaults not applied: %+v (url %s)", c, c.url)
	}
	if c, err := ParseConfig([]byte(`{"endpoint": "https://collector:4317"}`)); err != nil || c.Protocol != ProtocolGRPC {
		t.Fatalf("grpc default: %+v, %v", c, err)
	}
	forwardtest.CheckRefused(t, func(raw []byte) error { _, err := ParseConfig(raw); return err }, []forwardtest.ConfigCase{
		{`{}`, []string{"endpoint: required"}},
		{`{"endpoint": "collector:4317"}`, []string{`endpoint: "collector:4317" is not an http:// or https:// URL`}},
		{`{"endpoint": "http://c:4317/v1/logs"}`, []string{`endpoint: a grpc endpoint has no path`}},
		{`{"endpoint": "http://c:4317", "protocol": "thrift"}`, []string{`protocol: must be grpc or http`}},
		{`{"endpoint": "http://c:4317", "compression": "zstd"}`, []string{`compression: must be gzip or none`}},
		{`{"endpoint": "http://c:4317", "tls": {"ca_file": "/x"}}`, []string{"tls: set only with an https:// endpoint"}},
		{`{"endpoint": "https://c:4317", "tls": {"key_file": "/x"}}`, []string{"tls.cert_file: cert_file and key_file go together"}},
		{`{"endpoint": "http://c:4317", "headers": {"bad header": "x"}}`, []string{"headers.bad header: not a valid header name"}},
		{`{"endpoint": "http://c:4317", "headers_env": {"authorization": "FLOWKER_AUDIT_TEST_UNSET_VAR"}}`, []string{"headers_env.authorization: environment variable FLOWKER_AUDIT_TEST_UNSET_VAR is not set"}},
		{`{"endpoint": "http://c:4317", "timeout": "-1s"}`, []string{"timeout: must not be negative"}},
		{`{"endpoint": "http://c:4317", "max_request_bytes": 10}`, []string{"max_request_bytes: must be at least 65536"}},
		{`{"endpoint": "http://c:4317", "replay_on_reconnect": -1}`, []string{"replay_on_reconnect: must not be negative"}},
		{`{"endpont": "http://c:4317", "headers": [1]}`, []string{"endpont: unknown key", "headers: must be an object of strings, got [1]", "endpoint: required"}},
	})
}
