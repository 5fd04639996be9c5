package syslog

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/rsyslogtest"
	"github.com/flowker-audit/flowker-audit/internal/tlstest"
	"github.com/flowker-audit/flowker-audit/plugins/internal/forwardtest"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func newSink(t testing.TB, cfg map[string]any) *Sink {
	return forwardtest.Configure(t, New(Options{}), cfg)
}

var sdParam = regexp.MustCompile(`([A-Za-z]+)="((?:[^"\\]|\\.)*)"`)

// checkReceived compares what rsyslog wrote (checkpoints aside) with events: every event
// exactly once, unless dupsOK, when an event may repeat (its copies identical). It returns the
// number of duplicates.
func checkReceived(t *testing.T, srv *rsyslogtest.Server, events []chain.Event, dupsOK bool) (dups, torn int) {
	t.Helper()
	byID := map[string]*chain.Event{}
	for i := range events {
		byID[events[i].EventID] = &events[i]
	}
	var msgs []rsyslogtest.Message
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if msgs, torn, err = srv.Messages(); err != nil {
			t.Fatal(err)
		}
		msgs = slices.DeleteFunc(msgs, func(m rsyslogtest.Message) bool { return m.MsgID == CheckpointMsgID })
		seen := map[string]bool{}
		for _, m := range msgs {
			seen[m.MsgID+m.StructuredData] = true
		}
		if len(seen) >= len(events) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	count := map[string]int{}
	for i, m := range msgs {
		params := map[string]string{}
		if !strings.HasPrefix(m.StructuredData, "["+DefaultSDID+" ") {
			t.Fatalf("message %d: structured data %q", i, m.StructuredData)
		}
		for _, p := range sdParam.FindAllStringSubmatch(m.StructuredData, -1) {
			params[p[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\]`, `]`).Replace(p[2])
		}
		e := byID[params["eventId"]]
		if e == nil {
			t.Fatalf("message %d: unknown eventId %q in %q", i, params["eventId"], m.StructuredData)
		}
		count[e.EventID]++
		what := fmt.Sprintf("message %d (sequence %d)", i, e.Sequence)
		if want := string(e.AppendJSON(nil)); m.Msg != want {
			t.Fatalf("%s: MSG differs from the event's JSON\n got %s\nwant %s", what, m.Msg, want)
		}
		var back chain.Event
		if err := json.Unmarshal([]byte(m.Msg), &back); err != nil {
			t.Fatalf("%s: MSG is not an event: %v", what, err)
		}
		if got := back.ComputeHash(); got != e.Hash {
			t.Fatalf("%s: hash recomputed from MSG = %s, want %s", what, got, e.Hash)
		}
		sev := severityWarning
		if e.Result == chain.ResultSuccess {
			sev = severityNotice
		}
		for _, c := range []struct{ name, got, want string }{
			{"PRI", m.PRI, strconv.Itoa(16*8 + sev)},
			{"APP-NAME", m.AppName, DefaultAppName},
			{"HOSTNAME", m.Hostname, "audit-host"},
			{"MSGID", m.MsgID, e.EventType},
			{"eventType", params["eventType"], e.EventType},
			{"action", params["action"], e.Action},
			{"result", params["result"], e.Result},
			{"actorType", params["actorType"], e.Actor.Type},
			{"actorId", params["actorId"], e.Actor.ID},
			{"actorIp", params["actorIp"], e.Actor.IPAddress},
			{"resourceType", params["resourceType"], e.ResourceType},
			{"resourceId", params["resourceId"], e.ResourceID},
			{"chainId", params["chainId"], e.ChainID},
			{"sequence", params["sequence"], strconv.FormatUint(e.Sequence, 10)},
			{"hash", params["hash"], e.Hash},
		} {
			if c.got != c.want {
				t.Fatalf("%s: %s = %q, want %q", what, c.name, c.got, c.want)
			}
		}
	}
	if torn > 0 && !dupsOK {
		t.Fatalf("%d records torn in rsyslog's output", torn)
	}
	for i := range events {
		switch n := count[events[i].EventID]; {
		case n == 0:
			t.Fatalf("event sequence %d was never received (%d messages in all)", events[i].Sequence, len(msgs))
		case n > 1 && !dupsOK:
			t.Fatalf("event sequence %d received %d times", events[i].Sequence, n)
		case n > 1:
			dups += n - 1
		}
	}
	return dups, torn
}

func TestDeliverToRsyslog(t *testing.T) {
	certs := tlstest.Generate(t)
	for _, tc := range []struct {
		name string
		opts rsyslogtest.Options
		cfg  map[string]any
	}{
		{"tcp", rsyslogtest.Options{}, map[string]any{"transport": "tcp"}},
		{"tls", rsyslogtest.Options{TLS: &rsyslogtest.TLS{CA: certs.CA, Cert: certs.ServerCert, Key: certs.ServerKey}},
			map[string]any{"transport": "tls", "tls": map[string]any{"ca_file": certs.CA, "server_name": tlstest.ServerName}}},
		{"tls client certificate", rsyslogtest.Options{TLS: &rsyslogtest.TLS{CA: certs.CA, Cert: certs.ServerCert, Key: certs.ServerKey, ClientAuth: true}},
			map[string]any{"transport": "tls", "tls": map[string]any{"ca_file": certs.CA, "cert_file": certs.ClientCert, "key_file": certs.ClientKey}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rsyslogtest.Start(t, tc.opts)
			tc.cfg["address"] = srv.Addr
			tc.cfg["hostname"] = "audit-host"
			s := newSink(t, tc.cfg)
			events := sinktest.GenerateChain("chain-syslog", 1000, sinktest.GenOptions{Seed: 7})
			forwardtest.WriteAll(t, s, events, 100, nil)
			// A repeated batch is not forwarded twice.
			if err := s.Write(t.Context(), events[900:]); err != nil {
				t.Fatal(err)
			}
			_, _ = checkReceived(t, srv, events, false)
		})
	}
}

func TestTLSRefusesWrongServerName(t *testing.T) {
	certs := tlstest.Generate(t)
	srv := rsyslogtest.Start(t, rsyslogtest.Options{TLS: &rsyslogtest.TLS{CA: certs.CA, Cert: certs.ServerCert, Key: certs.ServerKey}})
	s := newSink(t, map[string]any{"address": srv.Addr, "transport": "tls",
		"tls": map[string]any{"ca_file": certs.CA, "server_name": "someone-else.test"}})
	err := s.Write(t.Context(), sinktest.GenerateChain("c", 1, sinktest.GenOptions{Seed: 1}))
	if err == nil || !sink.IsPermanent(err) || !strings.Contains(err.Error(), "someone-else.test") {
		t.Fatalf("Write with a wrong server name: %v; want a permanent certificate error", err)
	}
}

// TestReceiverRestart stops rsyslog in the middle of a stream (an orderly stop, then a crash)
// and starts it again a second later; the sink, driven like the host drives it, must lose
// nothing. Duplicates can occur (replay_on_reconnect); they are counted and logged.
func TestReceiverRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			srv := rsyslogtest.Start(t, rsyslogtest.Options{})
			s := newSink(t, map[string]any{"address": srv.Addr, "hostname": "audit-host"})
			events := sinktest.GenerateChain("chain-restart", 3000, sinktest.GenOptions{Seed: 9})
			restarted := make(chan error, 2)
			failures := forwardtest.WriteAll(t, s, events, 100, func(b int) {
				switch b {
				case 10, 20:
					srv.Stop(sig)
					go func() {
						time.Sleep(time.Second)
						restarted <- srv.Restart()
					}()
				}
			})
			for range 2 {
				if err := <-restarted; err != nil {
					t.Fatal(err)
				}
			}
			dups, torn := checkReceived(t, srv, events, true)
			t.Logf("%s: %d events, %d failed writes retried, %d messages replayed, %d duplicates received (so %d replayed messages had been lost by the receiver), %d records torn in rsyslog's file by the kill",
				sig, len(events), failures, s.Replayed(), dups, int(s.Replayed())-dups, torn)
			if dups > int(s.Replayed()) {
				t.Fatalf("%d duplicates but only %d messages replayed", dups, s.Replayed())
			}
		})
	}
}

// TestForwardCheckpoints writes events and the signed checkpoints of their heads, as the host
// does, to a real rsyslogd: each checkpoint arrives once (handed over twice) as an
// AUDIT_CHECKPOINT message whose structured data holds its fields and whose MSG is its
// checkpoint-log JSON, and that JSON's signature verifies with the public key. With
// forward_checkpoints: false none arrives.
func TestForwardCheckpoints(t *testing.T) {
	for _, forwardOn := range []bool{true, false} {
		t.Run(fmt.Sprintf("forward_checkpoints=%t", forwardOn), func(t *testing.T) {
			srv := rsyslogtest.Start(t, rsyslogtest.Options{})
			s := newSink(t, map[string]any{"address": srv.Addr, "hostname": "audit-host", "forward_checkpoints": forwardOn})
			events := sinktest.GenerateChain("chain-checkpoints", 300, sinktest.GenOptions{Seed: 3})
			cps, pub := forwardtest.SignCheckpoints(t, events, 100)
			forwardtest.WriteWithCheckpoints(t, s, events, cps, 100)
			// The events are written after the checkpoints on the same connection: once they
			// are all in rsyslog's file, so is every checkpoint message sent before them.
			forwardtest.WriteAll(t, s, sinktest.GenerateChain("chain-after", 10, sinktest.GenOptions{Seed: 4}), 10, nil)
			checkReceived(t, srv, append(append([]chain.Event{}, events...), sinktest.GenerateChain("chain-after", 10, sinktest.GenOptions{Seed: 4})...), false)
			msgs, _, err := srv.Messages()
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint64]int{}
			for _, m := range msgs {
				if m.MsgID != CheckpointMsgID {
					continue
				}
				c := forwardtest.Verified(t, m.Msg, pub)
				params := map[string]string{}
				for _, p := range sdParam.FindAllStringSubmatch(m.StructuredData, -1) {
					params[p[1]] = p[2]
				}
				want := map[string]string{"chainId": c.ChainID, "sequence": strconv.FormatUint(c.Sequence, 10), "hash": c.Hash,
					"keyId": c.KeyID, "signature": c.Signature}
				if fmt.Sprint(params) != fmt.Sprint(want) || !strings.HasPrefix(m.StructuredData, "["+DefaultSDID+" ") {
					t.Fatalf("checkpoint structured data %s, want [%s %v]", m.StructuredData, DefaultSDID, want)
				}
				if m.PRI != strconv.Itoa(16*8+severityNotice) {
					t.Fatalf("checkpoint PRI %s", m.PRI)
				}
				got[c.Sequence]++
			}
			forwardtest.CheckForwarded(t, got, cps, forwardOn)
		})
	}
}

func TestConformance(t *testing.T) {
	srv := rsyslogtest.Start(t, rsyslogtest.Options{})
	sinktest.Run(t, func(t *testing.T) sink.Sink {
		return newSink(t, map[string]any{"address": srv.Addr})
	})
}
