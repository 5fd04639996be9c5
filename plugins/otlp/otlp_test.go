package otlp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/otelcoltest"
	"github.com/flowker-audit/flowker-audit/internal/tlstest"
	"github.com/flowker-audit/flowker-audit/plugins/internal/forwardtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func newSink(t testing.TB, cfg map[string]any) *Sink {
	return forwardtest.Configure(t, New(Options{}), cfg)
}

// checkReceived compares the collector's records of the chains of events (collectors are
// shared between subtests; checkpoints aside) with events: every event present with the expected body,
// attributes and resource; duplicates only when dupsOK (then counted). torn counts requests
// cut short in the collector's file.
func checkReceived(t *testing.T, col *otelcoltest.Collector, events []chain.Event, dupsOK bool) (dups, torn int) {
	t.Helper()
	byID := map[string]*chain.Event{}
	chains := map[string]bool{}
	for i := range events {
		byID[events[i].EventID] = &events[i]
		chains[events[i].ChainID] = true
	}
	var recs []otelcoltest.Record
	deadline := time.Now().Add(60 * time.Second)
	for {
		all, n, err := col.Records()
		if err != nil {
			t.Fatal(err)
		}
		recs, torn = recs[:0], n
		distinct := map[any]bool{}
		for _, r := range all {
			if chains[r.Resource["service.instance.id"]] && r.EventName != CheckpointEventName {
				recs = append(recs, r)
				distinct[r.Attributes["log.record.uid"]] = true
			}
		}
		// The file exporter writes every 100 ms: wait until every event is in the file.
		if len(distinct) >= len(events) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	count := map[string]int{}
	for i, r := range recs {
		id, _ := r.Attributes["log.record.uid"].(string)
		e := byID[id]
		if e == nil {
			t.Fatalf("record %d: unknown log.record.uid %q", i, id)
		}
		count[id]++
		what := fmt.Sprintf("record %d (sequence %d)", i, e.Sequence)
		if want := string(e.AppendJSON(nil)); r.Body != want {
			t.Fatalf("%s: body differs from the event's JSON\n got %s\nwant %s", what, r.Body, want)
		}
		var back chain.Event
		if err := json.Unmarshal([]byte(r.Body), &back); err != nil {
			t.Fatalf("%s: body is not an event: %v", what, err)
		}
		if got := back.ComputeHash(); got != e.Hash {
			t.Fatalf("%s: hash recomputed from the body = %s, want %s", what, got, e.Hash)
		}
		sev, sevText := 9, "INFO"
		if e.Result != chain.ResultSuccess {
			sev, sevText = 13, "WARN"
		}
		attrs := map[string]string{
			"event.name": e.EventType, "flowker.audit.event_type": e.EventType, "flowker.audit.action": e.Action,
			"flowker.audit.result": e.Result, "flowker.audit.actor.type": e.Actor.Type, "flowker.audit.actor.id": e.Actor.ID,
			"flowker.audit.resource.type": e.ResourceType, "flowker.audit.resource.id": e.ResourceID,
			"flowker.audit.chain_id": e.ChainID, "flowker.audit.sequence": strconv.FormatUint(e.Sequence, 10),
			"flowker.audit.hash": e.Hash, "client.address": e.Actor.IPAddress,
		}
		if e.PreviousHash != "" {
			attrs["flowker.audit.previous_hash"] = e.PreviousHash
		}
		if e.Actor.Type == chain.ActorUser || e.Actor.Type == chain.ActorAPIKey {
			attrs["user.id"] = e.Actor.ID
		}
		for k, want := range attrs {
			if got, _ := r.Attributes[k].(string); got != want {
				t.Fatalf("%s: attribute %s = %q, want %q", what, k, got, want)
			}
		}
		if len(r.Attributes) != len(attrs)+1 { // + log.record.uid
			t.Fatalf("%s: %d attributes, want %d: %v", what, len(r.Attributes), len(attrs)+1, r.Attributes)
		}
		for _, c := range []struct{ name, got, want string }{
			{"event name", r.EventName, e.EventType},
			{"severity", strconv.Itoa(r.Severity), strconv.Itoa(sev)},
			{"severity text", r.SeverityText, sevText},
			{"time", r.TimeUnixNano, strconv.FormatInt(e.Timestamp.UnixNano(), 10)},
			{"service.name", r.Resource["service.name"], "flowker-audit"},
			{"service.instance.id", r.Resource["service.instance.id"], e.ChainID},
			{"scope", r.Scope, scopeName},
		} {
			if c.got != c.want {
				t.Fatalf("%s: %s = %q, want %q", what, c.name, c.got, c.want)
			}
		}
	}
	for i := range events {
		switch n := count[events[i].EventID]; {
		case n == 0:
			t.Fatalf("event sequence %d (chain %s) was never received (%d records in all)", events[i].Sequence, events[i].ChainID, len(recs))
		case n > 1 && !dupsOK:
			t.Fatalf("event sequence %d received %d times", events[i].Sequence, n)
		case n > 1:
			dups += n - 1
		}
	}
	return dups, torn
}

func endpoint(col *otelcoltest.Collector, protocol, scheme string) string {
	if protocol == ProtocolHTTP {
		return scheme + "://" + col.HTTPAddr
	}
	return scheme + "://" + col.GRPCAddr
}

func TestDeliverToCollector(t *testing.T) {
	certs := tlstest.Generate(t)
	plain := otelcoltest.Start(t, otelcoltest.Options{})
	secure := otelcoltest.Start(t, otelcoltest.Options{TLS: &otelcoltest.TLS{Cert: certs.ServerCert, Key: certs.ServerKey}})
	mutual := otelcoltest.Start(t, otelcoltest.Options{TLS: &otelcoltest.TLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA}})
	n := 0
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTP} {
		for _, tc := range []struct {
			name string
			col  *otelcoltest.Collector
			cfg  map[string]any
		}{
			{"plain", plain, map[string]any{}},
			{"gzip", plain, map[string]any{"compression": "gzip", "headers": map[string]string{"x-tenant": "audit"}}},
			{"tls", secure, map[string]any{"tls": map[string]any{"ca_file": certs.CA, "server_name": tlstest.ServerName}}},
			{"mutual tls", mutual, map[string]any{"tls": map[string]any{"ca_file": certs.CA, "cert_file": certs.ClientCert, "key_file": certs.ClientKey}}},
		} {
			t.Run(protocol+"/"+tc.name, func(t *testing.T) {
				n++
				scheme := "http"
				if tc.col != plain {
					scheme = "https"
				}
				tc.cfg["endpoint"] = endpoint(tc.col, protocol, scheme)
				tc.cfg["protocol"] = protocol
				s := newSink(t, tc.cfg)
				// Two chains in one batch: each gets its own resource.
				a := sinktest.GenerateChain(fmt.Sprintf("chain-%d-a", n), 300, sinktest.GenOptions{Seed: int64(n)})
				b := sinktest.GenerateChain(fmt.Sprintf("chain-%d-b", n), 150, sinktest.GenOptions{Seed: int64(100 + n)})
				forwardtest.WriteAll(t, s, append(append([]chain.Event{}, a[:200]...), b...), 100, nil)
				forwardtest.WriteAll(t, s, a, 120, nil) // a[:200] again: not forwarded twice
				checkReceived(t, tc.col, append(append([]chain.Event{}, a...), b...), false)
			})
		}
	}
	// The mutual-TLS collector refuses a client without a certificate.
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTP} {
		s := newSink(t, map[string]any{"endpoint": endpoint(mutual, protocol, "https"), "protocol": protocol, "timeout": "2s",
			"tls": map[string]any{"ca_file": certs.CA}})
		if err := s.Write(t.Context(), sinktest.GenerateChain("chain-no-cert", 1, sinktest.GenOptions{Seed: 1})); err == nil {
			t.Errorf("%s: a client without a certificate was accepted by the mutual-TLS collector", protocol)
		}
	}
}

// TestCollectorDown takes the collector away for 10 s under load and starts it again: stopped
// in order (SIGTERM: it flushes what it acknowledged) or killed (SIGKILL: its file exporter
// loses what it acknowledged but had not flushed — in practice the newline of its last line,
// which the harness repairs and counts as torn). Nothing may be lost. Duplicates can come from
// a request stored by the collector whose answer the sink never got (so at most the events of
// the failed writes) and, with replay_on_reconnect, from the replay (at most the events
// replayed); they are counted and logged.
func TestCollectorDown(t *testing.T) {
	for _, tc := range []struct {
		sig      syscall.Signal
		protocol string
		replay   int
	}{
		{syscall.SIGTERM, ProtocolHTTP, 0},
		{syscall.SIGKILL, ProtocolGRPC, 0},
		{syscall.SIGKILL, ProtocolHTTP, 0},
		{syscall.SIGKILL, ProtocolGRPC, 500},
	} {
		name := fmt.Sprintf("%s/%s/replay=%d", tc.sig, tc.protocol, tc.replay)
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each has its own collector; the 10 s outages overlap
			const batch = 100
			col := otelcoltest.Start(t, otelcoltest.Options{})
			s := newSink(t, map[string]any{"endpoint": endpoint(col, tc.protocol, "http"), "protocol": tc.protocol,
				"timeout": "2s", "replay_on_reconnect": tc.replay})
			events := sinktest.GenerateChain("chain-down-"+name, 3000, sinktest.GenOptions{Seed: 5})
			restarted := make(chan error, 1)
			var down time.Time
			failures := forwardtest.WriteAll(t, s, events, batch, func(b int) {
				if b == 20 {
					col.Stop(tc.sig)
					down = time.Now()
					go func() {
						time.Sleep(10 * time.Second)
						restarted <- col.Restart()
					}()
				}
			})
			ended := time.Since(down)
			if err := <-restarted; err != nil {
				t.Fatal(err)
			}
			dups, torn := checkReceived(t, col, events, true)
			replayed := int(s.Replayed())
			t.Logf("%s: %d events; collector down at batch 20 for 10s; the last batch was written %s after the stop; %d failed writes retried; %d events replayed; %d duplicates received; %d requests torn in its file",
				name, len(events), ended.Round(100*time.Millisecond), failures, replayed, dups, torn)
			if failures == 0 {
				t.Fatal("no write failed: the outage was not seen")
			}
			if tc.replay > 0 && replayed < tc.replay {
				t.Fatalf("%d events replayed, want at least %d", replayed, tc.replay)
			}
			if tc.replay == 0 && replayed != 0 {
				t.Fatalf("%d events replayed with replay_on_reconnect 0", replayed)
			}
			// A failed write may have been stored: its batch, and its replay, may arrive twice.
			if bound := replayed + failures*(batch+tc.replay); dups > bound {
				t.Fatalf("%d duplicates: more than the %d events of acknowledged replays and failed writes", dups, bound)
			}
		})
	}
}

// TestForwardCheckpoints writes events and the signed checkpoints of their heads, as the host
// does, to a real collector over gRPC and HTTP: each checkpoint arrives once (handed over
// twice) as an AUDIT_CHECKPOINT record with its fields as attributes and its checkpoint-log
// JSON as body, and that JSON's signature verifies with the public key. With
// forward_checkpoints: false none arrives.
func TestForwardCheckpoints(t *testing.T) {
	col := otelcoltest.Start(t, otelcoltest.Options{})
	for _, protocol := range []string{ProtocolGRPC, ProtocolHTTP} {
		for _, forwardOn := range []bool{true, false} {
			name := fmt.Sprintf("%s/forward_checkpoints=%t", protocol, forwardOn)
			t.Run(name, func(t *testing.T) {
				s := newSink(t, map[string]any{"endpoint": endpoint(col, protocol, "http"), "protocol": protocol, "forward_checkpoints": forwardOn})
				events := sinktest.GenerateChain("chain-cp-"+name, 300, sinktest.GenOptions{Seed: 3})
				cps, pub := forwardtest.SignCheckpoints(t, events, 100)
				forwardtest.WriteWithCheckpoints(t, s, events, cps, 100)
				// Written after the checkpoints: once they are all in the collector's file, so is
				// every checkpoint exported before them.
				after := sinktest.GenerateChain("chain-cp-after-"+name, 10, sinktest.GenOptions{Seed: 4})
				forwardtest.WriteAll(t, s, after, 10, nil)
				checkReceived(t, col, append(append([]chain.Event{}, events...), after...), false)
				recs, _, err := col.Records()
				if err != nil {
					t.Fatal(err)
				}
				got := map[uint64]int{}
				for _, r := range recs {
					if r.EventName != CheckpointEventName || r.Resource["service.instance.id"] != events[0].ChainID {
						continue
					}
					c := forwardtest.Verified(t, r.Body, pub)
					want := map[string]any{"event.name": CheckpointEventName, "flowker.audit.chain_id": c.ChainID,
						"flowker.audit.sequence": strconv.FormatUint(c.Sequence, 10), "flowker.audit.hash": c.Hash,
						"flowker.audit.checkpoint.key_id": c.KeyID, "flowker.audit.checkpoint.signature": c.Signature}
					if fmt.Sprint(r.Attributes) != fmt.Sprint(want) {
						t.Fatalf("checkpoint attributes %v, want %v", r.Attributes, want)
					}
					if r.TimeUnixNano != strconv.FormatInt(c.Time.UnixNano(), 10) || r.SeverityText != "INFO" || r.Scope != scopeName {
						t.Fatalf("checkpoint record %+v", r)
					}
					got[c.Sequence]++
				}
				forwardtest.CheckForwarded(t, got, cps, forwardOn)
			})
		}
	}
}

func TestConformance(t *testing.T) {
	col := otelcoltest.Start(t, otelcoltest.Options{})
	sinktest.Run(t, func(t *testing.T) sink.Sink {
		return newSink(t, map[string]any{"endpoint": "http://" + col.GRPCAddr})
	})
}
