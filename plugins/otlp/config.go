package otlp

import (
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/plugins/internal/forward"
	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// Protocols.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Defaults.
const (
	DefaultServiceName       = "flowker-audit"
	DefaultTimeout           = 10 * time.Second
	DefaultMaxRequestBytes   = 3 << 20
	DefaultReplayOnReconnect = 0
	defaultHTTPPath          = "/v1/logs"
)

// Config is the sink's `config:` block. Unknown keys are rejected.
type Config struct {
	// Endpoint is the receiver's URL: http://collector:4317 for grpc, http://collector:4318 for
	// http (the path defaults to /v1/logs). https:// means TLS. Required.
	Endpoint string `json:"endpoint"`
	// Protocol is grpc (OTLP/gRPC, the default) or http (OTLP/HTTP with protobuf bodies).
	Protocol string `json:"protocol"`
	// Headers are sent with every export (gRPC metadata or HTTP headers), e.g. authorization.
	Headers map[string]string `json:"headers"`
	// HeadersEnv maps a header name to the environment variable holding its value, so that
	// secrets stay out of config.yaml.
	HeadersEnv map[string]string `json:"headers_env"`
	// Compression is gzip or none (the default).
	Compression string `json:"compression"`
	// TLS configures an https:// endpoint: ca_file, cert_file + key_file, server_name.
	TLS forward.TLS `json:"tls"`
	// ServiceName is the service.name resource attribute (default flowker-audit);
	// service.instance.id is the chain id.
	ServiceName string `json:"service_name"`
	// Timeout bounds one export request (default 10s).
	Timeout pluginconfig.Duration `json:"timeout"`
	// MaxRequestBytes splits a batch into several export requests of about this many bytes
	// (default 3 MiB, below the collector's default 4 MiB gRPC message limit).
	MaxRequestBytes int `json:"max_request_bytes"`
	// ReplayOnReconnect is how many of the last acknowledged events are exported again after
	// an export that got no answer (the receiver went away). Default 0: an OTLP
	// acknowledgement is trusted. Set it for a receiver that acknowledges before it stores and
	// may lose that when killed (see the package documentation): those events may then
	// arrive twice rather than never.
	ReplayOnReconnect *int `json:"replay_on_reconnect"`
	// ForwardCheckpoints exports each signed checkpoint the sidecar makes as a log record of
	// its own (event name AUDIT_CHECKPOINT; default true): a witness of the chain heads outside
	// the sidecar's host, verifiable with the checkpoint public key.
	ForwardCheckpoints *bool `json:"forward_checkpoints"`

	checkpoints bool
	replay      int
	url         *url.URL
	headers     map[string]string // Headers plus HeadersEnv, resolved
}

// ParseConfig decodes and checks a configuration, filling in defaults. Every problem is
// reported with its key path. Header values named by headers_env are read from the
// environment; nothing else outside the configuration is touched.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	var p pluginconfig.Problems
	pluginconfig.Decode(raw, &c, &p)
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolGRPC
	case ProtocolGRPC, ProtocolHTTP:
	default:
		p.Add("protocol", "must be grpc or http, got %q", c.Protocol)
	}
	if c.Endpoint == "" {
		p.Add("endpoint", "required (a URL such as http://collector:4317)")
	} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add("endpoint", "%q is not an http:// or https:// URL with a host", c.Endpoint)
	} else {
		if c.Protocol == ProtocolHTTP && (u.Path == "" || u.Path == "/") {
			u.Path = defaultHTTPPath
		}
		if c.Protocol == ProtocolGRPC && u.Path != "" && u.Path != "/" {
			p.Add("endpoint", "a grpc endpoint has no path, got %q", u.Path)
		}
		if u.Scheme == "http" && !c.TLS.IsZero() {
			p.Add("tls", "set only with an https:// endpoint")
		}
		c.url = u
	}
	if c.TLS.CertFile == "" != (c.TLS.KeyFile == "") {
		p.Add("tls.cert_file", "cert_file and key_file go together")
	}
	c.headers = map[string]string{}
	for k, v := range c.Headers {
		if !headerName(k) {
			p.Add("headers."+k, "not a valid header name")
		}
		c.headers[k] = v
	}
	for k, env := range c.HeadersEnv {
		switch v, ok := os.LookupEnv(env); {
		case !headerName(k):
			p.Add("headers_env."+k, "not a valid header name")
		case env == "":
			p.Add("headers_env."+k, "names no environment variable")
		case !ok:
			p.Add("headers_env."+k, "environment variable %s is not set", env)
		default:
			if _, dup := c.Headers[k]; dup {
				p.Add("headers_env."+k, "also set in headers")
			}
			c.headers[k] = v
		}
	}
	switch c.Compression {
	case "":
		c.Compression = "none"
	case "none", "gzip":
	default:
		p.Add("compression", "must be gzip or none, got %q", c.Compression)
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = pluginconfig.Duration(DefaultTimeout)
	case c.Timeout < 0:
		p.Add("timeout", "must be positive")
	}
	switch {
	case c.MaxRequestBytes == 0:
		c.MaxRequestBytes = DefaultMaxRequestBytes
	case c.MaxRequestBytes < 64<<10:
		p.Add("max_request_bytes", "must be at least 65536")
	}
	c.replay = DefaultReplayOnReconnect
	if c.ReplayOnReconnect != nil {
		c.replay = *c.ReplayOnReconnect
		if c.replay < 0 {
			p.Add("replay_on_reconnect", "must not be negative")
		}
	}
	c.checkpoints = c.ForwardCheckpoints == nil || *c.ForwardCheckpoints
	return c, p.Err("invalid otlp sink configuration")
}

// headerName reports whether s is an HTTP token usable as a header (and gRPC metadata) name.
func headerName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 126 || r <= 32 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}
