// Package syslog is the bundled `syslog` sink: it forwards audit events to a syslog receiver
// (rsyslog, syslog-ng, a SIEM's collector) as RFC 5424 messages, for security teams that keep
// their trail in the SIEM they already run.
//
// Each event is one message: PRI from the configured facility (severity notice for SUCCESS,
// warning otherwise), the event's own timestamp, hostname and app-name as configured, MSGID =
// the event type, structured data [flowkerAudit@32473 eventId= eventType= action= result=
// actorType= actorId= actorIp= resourceType= resourceId= chainId= sequence= hash=] and, as MSG,
// the event's JSON exactly as the audit API returns it, so each hash can be recomputed from
// what the SIEM stored.
//
// Transports: tcp (RFC 6587 octet-counting framing: "LEN SP MSG"), tls (RFC 5425: the same
// framing inside TLS, with ca_file, a client certificate and server_name) and udp (RFC 5426, one
// datagram per message). UDP confirms nothing and loses messages silently when the receiver is
// down, its buffer overflows or a message is larger than a datagram; use it only when nothing
// else is offered.
//
// # What is confirmed
//
// A batch is acknowledged to the sidecar only after every message was written to the socket
// and, on Linux, the receiving host's TCP stack acknowledged every byte (the socket's send
// queue is empty while the connection is still open: SIOCOUTQ and TCP_INFO). Syslog over TCP
// and TLS has no application-level acknowledgement, so that is all a sender can know: bytes
// the receiver's kernel accepted but its process never processed (killed with bytes in its
// socket buffer or in an in-memory queue) are lost to the sender's knowledge. To turn that
// loss into duplicates, when a connection breaks the last replay_on_reconnect confirmed
// messages (default 1000) are sent again first on the next connection; the sink logs how many.
// Receivers can drop duplicates by the structured data's chainId and sequence. A receiver that
// must not lose what it acknowledged at the TCP level should use a disk-assisted queue
// (rsyslog: queue.type="LinkedList" with queue.filename, or main_queue(queue.type="Direct")
// with a synchronously written action). RELP (rsyslog's reliable protocol) is not spoken.
//
// # Idempotency and heads
//
// The sink cannot read back what it sent: Head reports the last event this plugin process
// delivered (nothing after a restart, so the host resumes from its own cursor), and events at
// or below it are not sent again when the host repeats a batch.
// An event repeated with another hash at one of the last forward.Window sequences delivered is
// refused as a conflict (sink.ErrConflict), and nothing of its batch is sent.
//
// A connection that failed is replaced on the next Write; the host retries a failed Write with
// exponential backoff and jitter (sinks[].min_backoff..max_backoff), which is the reconnect
// backoff.
//
// # Signed checkpoints
//
// With forward_checkpoints (the default), each signed checkpoint the sidecar makes is sent as
// a message of its own: MSGID AUDIT_CHECKPOINT, severity notice, the checkpoint's time,
// structured data [SD-ID chainId= sequence= hash= keyId= signature=] and, as MSG, the
// checkpoint as one line of the sidecar's checkpoint log (the JSON `flowker-audit verify
// --checkpoints` reads). The SIEM then holds a witness of the chain heads outside the
// sidecar's host; the signature verifies with the checkpoint public key.
//
// Configuration (JSON):
//
//	{"address": "siem.example:6514", "transport": "tls",
//	 "tls": {"ca_file": "/etc/ssl/siem-ca.pem", "cert_file": "...", "key_file": "...", "server_name": "siem.example"},
//	 "facility": "local0", "app_name": "flowker-audit", "hostname": "pod-1", "sd_id": "flowkerAudit@32473",
//	 "dial_timeout": "5s", "replay_on_reconnect": 1000, "forward_checkpoints": true}
package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/internal/forward"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Sink is the syslog sink. Create it with New.
type Sink struct {
	log *slog.Logger

	heads   forward.Heads
	cpsSent forward.Forwarded // checkpoints forwarded by this process

	mu         sync.Mutex
	configured bool
	cfg        Config
	tlsCfg     *tls.Config
	fmt        formatter
	c          *conn
	broken     bool     // the last connection broke: replay the ring on the next one
	ring       [][]byte // the last cfg.replay confirmed frames, oldest first
	buf        []byte
	scratch    []byte
	replayed   uint64 // messages sent again after a broken connection (a count for logs and tests)
}

// Interface guards.
var (
	_ sink.Sink             = (*Sink)(nil)
	_ sink.Validator        = (*Sink)(nil)
	_ sink.CheckpointWriter = (*Sink)(nil)
)

// Options configures New.
type Options struct {
	// Logger receives the sink's log lines (nil discards them). The bundled plugin passes the
	// logger whose lines the sidecar re-logs.
	Logger *slog.Logger
}

// New returns an unconfigured syslog sink; call Configure before anything else.
func New(o Options) *Sink {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{log: log}
}

// ValidateConfig implements sink.Validator.
func (s *Sink) ValidateConfig(raw []byte) error {
	_, err := ParseConfig(raw)
	return err
}

// Capabilities implements sink.Sink: write only (the sink cannot answer queries).
func (s *Sink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true}, nil
}

// Configure implements sink.Sink. It checks the configuration and loads the TLS files; it does
// not connect (the first Write does), so a receiver that is down delays delivery, not start.
func (s *Sink) Configure(_ context.Context, raw []byte) error {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return sink.Permanent(err)
	}
	var tlsCfg *tls.Config
	if cfg.Transport == TransportTLS {
		host, _, _ := net.SplitHostPort(cfg.Address)
		if tlsCfg, err = cfg.TLS.Config(host); err != nil {
			return sink.Permanent(fmt.Errorf("invalid syslog sink configuration:\ntls.%w", err))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConn()
	s.cfg, s.tlsCfg, s.configured = cfg, tlsCfg, true
	s.fmt = formatter{facility: cfg.facility, hostname: cfg.Hostname, appName: cfg.AppName,
		procID: strconv.Itoa(os.Getpid()), sdID: cfg.SDID}
	s.log.Info("syslog sink configured", "address", cfg.Address, "transport", cfg.Transport,
		"facility", cfg.Facility, "app_name", cfg.AppName, "hostname", cfg.Hostname)
	return nil
}

// Head implements sink.Sink: the last event of chainID this process delivered.
func (s *Sink) Head(_ context.Context, chainID string) (sink.Head, error) {
	return s.heads.Head(chainID), nil
}

// Replayed returns how many messages were sent again after broken connections.
func (s *Sink) Replayed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replayed
}

// Write implements sink.Sink: it returns nil once every message was written and, over TCP and
// TLS, acknowledged by the receiver's host (see the package documentation).
func (s *Sink) Write(ctx context.Context, events []chain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return sink.Permanentf("syslog sink used before Configure (or after Close)")
	}
	fresh, err := s.heads.Fresh(events)
	if err != nil {
		return err
	}
	if len(fresh) == 0 {
		return nil
	}
	if s.cfg.Transport == TransportUDP {
		return s.writeUDP(ctx, fresh)
	}
	// Frames of the batch, one after the other; ends[i] is where frame i ends.
	s.buf = s.buf[:0]
	ends := make([]int, len(fresh))
	for i := range fresh {
		s.buf, s.scratch = appendFrame(s.buf, &s.fmt, &fresh[i], s.scratch)
		ends[i] = len(s.buf)
	}
	if err := s.send(ctx, s.buf); err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			err = sink.Permanent(err) // the receiver's certificate will not change by retrying soon
		}
		return fmt.Errorf("sending %d events (chain %s, sequences %d..%d): %w", len(fresh),
			fresh[0].ChainID, fresh[0].Sequence, fresh[len(fresh)-1].Sequence, err)
	}
	s.remember(s.buf, ends)
	s.heads.Delivered(fresh)
	return nil
}

// WriteCheckpoints implements sink.CheckpointWriter: with forward_checkpoints (the default),
// each signed checkpoint not forwarded yet by this process becomes one message (MSGID
// AUDIT_CHECKPOINT, the checkpoint's fields as structured data, its checkpoint-log JSON as MSG),
// confirmed like events.
func (s *Sink) WriteCheckpoints(ctx context.Context, cps []sink.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.configured {
		return sink.Permanentf("syslog sink used before Configure (or after Close)")
	}
	if !s.cfg.checkpoints {
		return nil
	}
	fresh := s.cpsSent.Fresh(cps)
	if len(fresh) == 0 {
		return nil
	}
	msgs := make([][]byte, len(fresh))
	for i := range fresh {
		line, err := forward.NewCheckpointLine(fresh[i]).JSON()
		if err != nil {
			return sink.Permanent(err)
		}
		msgs[i] = s.fmt.appendCheckpoint(nil, &fresh[i], line)
	}
	if err := s.sendMessages(ctx, msgs); err != nil {
		return fmt.Errorf("sending %d signed checkpoints (chain %s, sequences %d..%d): %w", len(fresh),
			fresh[0].ChainID, fresh[0].Sequence, fresh[len(fresh)-1].Sequence, err)
	}
	s.cpsSent.Done(fresh)
	return nil
}

// sendMessages sends messages: one datagram each over UDP, else framed on the connection and
// confirmed (see send).
func (s *Sink) sendMessages(ctx context.Context, msgs [][]byte) error {
	if s.cfg.Transport == TransportUDP {
		if s.c == nil {
			c, err := dial(ctx, &s.cfg, nil)
			if err != nil {
				return err
			}
			s.c = c
		}
		for _, m := range msgs {
			if err := s.c.write(ctx, m); err != nil {
				s.dropConn()
				return err
			}
		}
		return nil
	}
	var buf []byte
	ends := make([]int, len(msgs))
	for i, m := range msgs {
		buf = appendFramed(buf, m)
		ends[i] = len(buf)
	}
	if err := s.send(ctx, buf); err != nil {
		return err
	}
	s.remember(buf, ends)
	return nil
}

// send writes b on a live connection (replaying the ring first after a broken one) and waits
// for the confirmation. Any failure drops the connection.
func (s *Sink) send(ctx context.Context, b []byte) error {
	if s.c != nil && !s.c.alive() {
		s.log.Warn("the receiver closed the connection; reconnecting", "address", s.cfg.Address)
		s.closeConn()
		s.broken = true
	}
	if s.c == nil {
		c, err := dial(ctx, &s.cfg, s.tlsCfg)
		if err != nil {
			return err
		}
		s.c = c
	}
	if s.broken && len(s.ring) > 0 {
		var replay []byte
		for _, f := range s.ring {
			replay = append(replay, f...)
		}
		if err := s.c.write(ctx, replay); err != nil {
			s.dropConn()
			return fmt.Errorf("replaying %d messages after a broken connection: %w", len(s.ring), err)
		}
		s.replayed += uint64(len(s.ring))
		s.log.Warn("sent the last confirmed messages again after a broken connection; the receiver may hold them twice",
			"messages", len(s.ring), "replayed_total", s.replayed)
	}
	s.broken = false
	if err := s.c.write(ctx, b); err != nil {
		s.dropConn()
		return err
	}
	if err := s.c.confirm(ctx); err != nil {
		s.dropConn()
		return err
	}
	return nil
}

// remember keeps the last cfg.replay frames of buf (whose frames end at ends) in the ring.
func (s *Sink) remember(buf []byte, ends []int) {
	n := s.cfg.replay
	if n == 0 {
		return
	}
	start := 0
	first := max(0, len(ends)-n)
	if first > 0 {
		start = ends[first-1]
	}
	frames := make([][]byte, 0, len(ends)-first)
	for _, end := range ends[first:] {
		frames = append(frames, append([]byte(nil), buf[start:end]...))
		start = end
	}
	if keep := n - len(frames); keep < len(s.ring) {
		s.ring = s.ring[len(s.ring)-keep:]
	}
	s.ring = append(s.ring, frames...)
}

// writeUDP sends one datagram per message. A message larger than a datagram can carry is
// dropped and logged (UDP delivery is lossy by nature; stalling every later event on it would
// be worse); other errors fail the batch.
func (s *Sink) writeUDP(ctx context.Context, events []chain.Event) error {
	if s.c == nil {
		c, err := dial(ctx, &s.cfg, nil)
		if err != nil {
			return err
		}
		s.c = c
	}
	for i := range events {
		e := &events[i]
		s.scratch = s.fmt.appendMessage(s.scratch[:0], e)
		if err := s.c.write(ctx, s.scratch); err != nil {
			if errors.Is(err, syscall.EMSGSIZE) {
				s.log.Error("event too large for a UDP datagram; dropped", "chain_id", e.ChainID,
					"sequence", e.Sequence, "event_id", e.EventID, "bytes", len(s.scratch))
				continue
			}
			s.dropConn()
			s.heads.Delivered(events[:i])
			return fmt.Errorf("sending event %s (chain %s, sequence %d) over UDP: %w", e.EventID, e.ChainID, e.Sequence, err)
		}
	}
	s.heads.Delivered(events)
	return nil
}

func (s *Sink) dropConn() {
	s.closeConn()
	s.broken = true
}

func (s *Sink) closeConn() {
	if s.c != nil {
		_ = s.c.close()
		s.c = nil
	}
}

// Close implements sink.Sink.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConn()
	s.configured = false
	return nil
}
