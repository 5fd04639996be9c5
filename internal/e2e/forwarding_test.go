package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/otelcoltest"
	"github.com/flowker-audit/flowker-audit/internal/rsyslogtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/plugins/otlp"
	"github.com/flowker-audit/flowker-audit/plugins/syslog"
)

// TestForwardingSinks: fake Flowker -> sidecar -> the bundled syslog plugin into rsyslogd (TCP)
// and the bundled otlp plugin into an OpenTelemetry Collector (gRPC and HTTP), beside the SQLite
// query sink. Every event the audit API returns reaches each receiver exactly once, as the same
// JSON, and its hash recomputes from what the receiver stored; every signed checkpoint of the
// sidecar's checkpoint log reaches each receiver once, and its signature verifies with the
// public key.
func TestForwardingSinks(t *testing.T) {
	rs := rsyslogtest.Start(t, rsyslogtest.Options{})
	col := otelcoltest.Start(t, otelcoltest.Options{})
	env := testenv.Start(t, testenv.Options{Config: func(c *config.Config) {
		fast := config.Duration(50 * time.Millisecond)
		c.Chain.CheckpointInterval = config.Duration(time.Second)
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
		msgs = slices.DeleteFunc(msgs, func(m rsyslogtest.Message) bool { return m.MsgID == syslog.CheckpointMsgID })
		recs = slices.DeleteFunc(recs, func(r otelcoltest.Record) bool { return r.EventName == otlp.CheckpointEventName })
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

	// The checkpoints: every one in the sidecar's log (signed every second while the chain grew,
	// so at least one) arrives once in rsyslog and once through each OTLP protocol, as the
	// log's JSON, and verifies with the public key.
	key, err := checkpoint.LoadKey(filepath.Join(env.DataDir, "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	var logged []checkpoint.Checkpoint
	testenv.Eventually(t, 30*time.Second, "every signed checkpoint forwarded", func() bool {
		if logged, err = checkpoint.ReadFile(filepath.Join(env.DataDir, "checkpoints.ndjson")); err != nil {
			t.Fatal(err)
		}
		all, _, err := rs.Messages()
		if err != nil {
			t.Fatal(err)
		}
		recs, _, err := col.Records()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, m := range all {
			if m.MsgID == syslog.CheckpointMsgID {
				got[verified(t, pub, m.Msg)] += 10
			}
		}
		for _, r := range recs {
			if r.EventName == otlp.CheckpointEventName {
				got[verified(t, pub, r.Body)]++
			}
		}
		for _, c := range logged {
			if got[c.Signature] != 12 { // 1 syslog message (10) and 2 OTLP records
				return false
			}
		}
		return len(logged) > 0 && len(got) == len(logged)
	})
	t.Logf("%d events and %d signed checkpoints forwarded to each receiver", len(events), len(logged))
}

// verified returns the signature of the forwarded checkpoint line after checking it with pub.
func verified(t *testing.T, pub ed25519.PublicKey, line string) string {
	t.Helper()
	var c checkpoint.Checkpoint
	if err := json.Unmarshal([]byte(line), &c); err != nil {
		t.Fatalf("forwarded checkpoint %q: %v", line, err)
	}
	if err := c.Verify(pub); err != nil {
		t.Fatalf("forwarded checkpoint %s: %v", line, err)
	}
	return c.Signature
}
