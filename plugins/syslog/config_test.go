package syslog

import (
	"testing"

	"github.com/flowker-audit/flowker-audit/plugins/internal/forwardtest"
)

func TestParseConfig(t *testing.T) {
	good, err := ParseConfig([]byte(`{"address": "127.0.0.1:514"}`))
	if err != nil {
		t.Fatal(err)
	}
	if good.Transport != TransportTCP || good.facility != 16 || good.AppName != DefaultAppName ||
		good.SDID != DefaultSDID || good.replay != DefaultReplayOnReconnect || good.Hostname == "" || !good.checkpoints {
		t.Fatalf("defaults not applied: %+v", good)
	}
	forwardtest.CheckRefused(t, func(raw []byte) error { _, err := ParseConfig(raw); return err }, []forwardtest.ConfigCase{
		{`{}`, []string{"address: required"}},
		{`{"address": "nohost"}`, []string{`address: "nohost" is not host:port`}},
		{`{"address": "h:1", "transport": "relp"}`, []string{`transport: must be tcp, tls or udp, got "relp"`}},
		{`{"address": "h:1", "tls": {"ca_file": "/x"}}`, []string{"tls: set only with transport: tls"}},
		{`{"address": "h:1", "transport": "tls", "tls": {"cert_file": "/x"}}`, []string{"tls.cert_file: cert_file and key_file go together"}},
		{`{"address": "h:1", "transport": "tls", "tls": {"ca": "/x"}}`, []string{"tls.ca: unknown key"}},
		{`{"address": "h:1", "facility": "local9"}`, []string{`facility: "local9" is not a facility`}},
		{`{"address": "h:1", "facility": "24"}`, []string{`facility: "24" is not a facility`}},
		{`{"address": "h:1", "app_name": "has space"}`, []string{"app_name: must be 1..48 printable"}},
		{`{"address": "h:1", "hostname": "é"}`, []string{"hostname: must be 1..255 printable"}},
		{`{"address": "h:1", "sd_id": "a=b"}`, []string{"sd_id: must be 1..32"}},
		{`{"address": "h:1", "dial_timeout": "soon"}`, []string{"dial_timeout: not a duration"}},
		{`{"address": "h:1", "replay_on_reconnect": -1}`, []string{"replay_on_reconnect: must not be negative"}},
		{`{"address": 514}`, []string{"address: must be a string, got 514", "address: required"}},
		{`{"adress": "h:1", "transport": "x"}`, []string{"adress: unknown key", "address: required", "transport: must be"}},
		{`[1]`, []string{"must be a JSON object, got [1]"}},
	})
}
