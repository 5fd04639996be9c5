package syslog

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// TestUDP sends over UDP to a loopback socket: one datagram per message, no framing.
func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := newSink(t, map[string]any{"address": pc.LocalAddr().String(), "transport": "udp", "hostname": "h"})
	events := sinktest.GenerateChain("chain-udp", 20, sinktest.GenOptions{Seed: 2})
	if err := s.Write(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	for i := range events {
		_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		f := &s.fmt
		want := f.appendMessage(nil, &events[i])
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d:\n got %s\nwant %s", i, buf[:n], want)
		}
	}
}
