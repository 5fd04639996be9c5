package syslog

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/plugins/internal/forward"
	"github.com/flowker-audit/flowker-audit/sink/pluginconfig"
)

// Transports.
const (
	TransportTCP = "tcp"
	TransportTLS = "tls"
	TransportUDP = "udp"
)

// Defaults.
const (
	DefaultFacility          = "local0"
	DefaultAppName           = "flowker-audit"
	DefaultSDID              = "flowkerAudit@32473"
	DefaultDialTimeout       = 5 * time.Second
	DefaultReplayOnReconnect = 1000
)

// Config is the sink's `config:` block. Unknown keys are rejected.
type Config struct {
	// Address is the receiver, "host:port". Required.
	Address string `json:"address"`
	// Transport is tcp (the default: RFC 6587 octet-counting framing), tls (RFC 5425, the same
	// framing inside TLS) or udp (RFC 5426: one message per datagram, no confirmation at all;
	// lossy, use it only when the receiver offers nothing else).
	Transport string `json:"transport"`
	// TLS configures the tls transport: ca_file, cert_file + key_file (client certificate),
	// server_name.
	TLS forward.TLS `json:"tls"`
	// Facility is a facility name (kern, user, mail, daemon, auth, syslog, lpr, news, uucp,
	// cron, authpriv, ftp, ntp, security, console, local0..local7) or number 0..23. Default
	// local0.
	Facility string `json:"facility"`
	// AppName is the APP-NAME header field (default flowker-audit; 1..48 printable ASCII).
	AppName string `json:"app_name"`
	// Hostname is the HOSTNAME header field (default: the machine's host name; 1..255
	// printable ASCII).
	Hostname string `json:"hostname"`
	// SDID is the structured-data element's id (default flowkerAudit@32473; a private
	// enterprise number from RFC 5612's documentation range — set your own).
	SDID string `json:"sd_id"`
	// DialTimeout bounds connecting and the TLS handshake (default 5s).
	DialTimeout pluginconfig.Duration `json:"dial_timeout"`
	// ReplayOnReconnect is how many of the events last confirmed on a connection that then
	// broke are sent again first on the next connection (default 1000, 0 disables): TCP
	// syslog cannot tell what the receiver had processed when its connection broke (see the
	// package documentation), so these may arrive twice rather than never.
	ReplayOnReconnect *int `json:"replay_on_reconnect"`
	// ForwardCheckpoints sends each signed checkpoint the sidecar makes as a message of its
	// own (MSGID AUDIT_CHECKPOINT; default true): a witness of the chain heads outside the
	// sidecar's host, verifiable with the checkpoint public key.
	ForwardCheckpoints *bool `json:"forward_checkpoints"`

	facility    int
	replay      int
	checkpoints bool
}

// ParseConfig decodes and checks a configuration, filling in defaults. Every problem is
// reported with its key path. It reads no file and opens no connection.
func ParseConfig(raw []byte) (Config, error) {
	var c Config
	var p pluginconfig.Problems
	pluginconfig.Decode(raw, &c, &p)
	if c.Address == "" {
		p.Add("address", "required (host:port)")
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
		p.Add("address", "%q is not host:port", c.Address)
	}
	switch c.Transport {
	case "":
		c.Transport = TransportTCP
	case TransportTCP, TransportTLS, TransportUDP:
	default:
		p.Add("transport", "must be tcp, tls or udp, got %q", c.Transport)
	}
	if c.Transport != TransportTLS && !c.TLS.IsZero() {
		p.Add("tls", "set only with transport: tls")
	}
	if c.TLS.CertFile == "" != (c.TLS.KeyFile == "") {
		p.Add("tls.cert_file", "cert_file and key_file go together")
	}
	if c.Facility == "" {
		c.Facility = DefaultFacility
	}
	if f, ok := facilityNumber(c.Facility); ok {
		c.facility = f
	} else {
		p.Add("facility", "%q is not a facility name (kern, user, ..., local0..local7) or a number 0..23", c.Facility)
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if !printable(c.AppName, 48) {
		p.Add("app_name", "must be 1..48 printable ASCII characters without spaces")
	}
	if c.Hostname == "" {
		if h, err := os.Hostname(); err == nil && printable(h, 255) {
			c.Hostname = h
		} else {
			c.Hostname = "-"
		}
	} else if !printable(c.Hostname, 255) {
		p.Add("hostname", "must be 1..255 printable ASCII characters without spaces")
	}
	if c.SDID == "" {
		c.SDID = DefaultSDID
	}
	if !sdName(c.SDID) {
		p.Add("sd_id", "must be 1..32 printable ASCII characters without space, '=', ']' or '\"' (name@enterprise-number for a private id)")
	}
	switch {
	case c.DialTimeout == 0:
		c.DialTimeout = pluginconfig.Duration(DefaultDialTimeout)
	case c.DialTimeout < 0:
		p.Add("dial_timeout", "must be positive")
	}
	c.replay = DefaultReplayOnReconnect
	if c.ReplayOnReconnect != nil {
		c.replay = *c.ReplayOnReconnect
		if c.replay < 0 {
			p.Add("replay_on_reconnect", "must not be negative")
		}
	}
	c.checkpoints = c.ForwardCheckpoints == nil || *c.ForwardCheckpoints
	return c, p.Err("invalid syslog sink configuration")
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
	"local5": 21, "local6": 22, "local7": 23,
}

func facilityNumber(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, n >= 0 && n <= 23
	}
	n, ok := facilities[strings.ToLower(s)]
	return n, ok
}

// printable reports whether s is 1..max characters of PRINTUSASCII (RFC 5424: %d33-126).
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// sdName reports whether s is an SD-NAME: 1..32 PRINTUSASCII except '=', ']', '"'.
func sdName(s string) bool {
	if !printable(s, 32) {
		return false
	}
	return !strings.ContainsAny(s, `=]"`)
}
