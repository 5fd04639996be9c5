package e2e

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/otelcoltest"
	"github.com/flowker-audit/flowker-audit/internal/rsyslogtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// TestForwardingSinks: fake Flowker -> sidecar -> the bundled syslog plugin into rsyslogd (TCP)
// and the bundled otlp plugin into an OpenTelemetry Collector (gRPC and HTTP), beside the SQLite
// query sink. Every event the audit API returns reaches each receiver exactly once, as the same
// JSON, and its hash recomputes from what the receiver stored.
func TestForwardingSinks(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.Options{})
	col := otelcoltest.Start(t, otelcoltest.Options{})
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		fast := config.Duration(50 * time.Millisecond)
		c.Sinks = []config.Sink{
			{Name: "store", Plugin: "sqlite", Query: true, Config: map[string]any{"path": filepath.Join(c.DataDir, "audit.db")}},
			{Name: "siem-syslog", Plugin: "syslog", BatchInterval: fast, Config: map[string]any{"address": rs.Addr}},
			{Name: "siem-otlp-grpc", Plugin: "otlp", BatchInterval: fast, Config: map[string]any{"endpoint": "http://" + col.GRPCAddr}},
			{Name: "siem-otlp-http", Plugin: "otlp", BatchInterval: fast,
				Config: map[string]any{"endpoint": "http://" + col.HTTPAddr, "protocol": "http", "compression": "gzip"}},
		}
	}})
	scenario(t, caller{t: t, base: env.ProxyURL})
	for _, s := range []string{"store", "siem-syslog", "siem-otlp-grpc", "siem-otlp-http"} {
		waitSink(t, env, s)
	}
	events := env.AllEvents()
	if len(events) == 0 {
		t.Fatal("no events")
	}

	// Acknowledged means received; the collector's file exporter writes every 100 ms.
	var msgs []rsyslogtest.Message
	var recs []otelcoltest.Record
	// Execution outcomes may still be recorded after the scenario: the trail is read again on each
	// poll, until the receivers hold exactly as many messages as it has events (a duplicate or a
	// loss keeps the counts apart until the wait fails).
	testenv.Eventually(t, 30*time.Second, "the receivers' files to hold every event", func() bool {
		events = env.AllEvents()
		var torn int
		var err error
		if msgs, torn, err = rs.Messages(); err != nil || torn > 0 {
			t.Fatalf("rsyslog output: %v (%d torn)", err, torn)
		}
		if recs, _, err = col.Records(); err != nil {
			t.Fatal(err)
		}
		return len(msgs) == len(events) && len(recs) == 2*len(events)
	})
	gotSyslog := map[string]int{}
	for _, m := range msgs {
		gotSyslog[m.Msg]++
	}
	gotOTLP := map[string]int{}
	for _, r := range recs {
		gotOTLP[r.Body]++
	}
	for i := range events {
		e := &events[i]
		want := string(e.AppendJSON(nil))
		if n := gotSyslog[want]; n != 1 {
			t.Errorf("event %d (%s): %d copies in rsyslog, want 1", e.Sequence, e.EventType, n)
		}
		if n := gotOTLP[want]; n != 2 { // one through each OTLP protocol
			t.Errorf("event %d (%s): %d records in the collector, want 2 (gRPC and HTTP)", e.Sequence, e.EventType, n)
		}
		var back chain.Event
		if err := json.Unmarshal([]byte(want), &back); err != nil || back.ComputeHash() != e.Hash {
			t.Errorf("event %d: hash does not recompute from the forwarded JSON (%v)", e.Sequence, err)
		}
	}
	if len(msgs) != len(events) || len(recs) != 2*len(events) {
		t.Errorf("%d events, %d syslog messages, %d OTLP records", len(events), len(msgs), len(recs))
	}
}
