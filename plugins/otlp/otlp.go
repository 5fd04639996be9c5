// Package otlp is the bundled `otlp` sink: it forwards audit events as OpenTelemetry log
// records over OTLP/gRPC or OTLP/HTTP (protobuf) — to an OpenTelemetry Collector, or to any
// backend that takes OTLP (Elastic, Splunk, Loki, Sentinel through a collector) — using the
// official OpenTelemetry Go SDK and exporters (go.opentelemetry.io/otel/sdk/log,
// otlploggrpc, otlploghttp).
//
// Each event is one record: body = the event's JSON exactly as the audit API returns it, so
// each hash can be recomputed downstream; EventName = the event type; timestamp = the event's;
// severity INFO for SUCCESS and WARN otherwise; attributes event.name, log.record.uid (event
// id), user.id (user and API-key actors), client.address (the actor's IP) and flowker.audit.*
// (event_type, action, result, actor.type, actor.id, resource.type, resource.id, chain_id,
// sequence, hash, previous_hash). The resource carries service.name (service_name) and
// service.instance.id = the chain id.
//
// One Write is one export request (the host's batch_size and batch_bytes set its size), split
// only past max_request_bytes. A Write returns nil once the receiver acknowledged the request;
// an OpenTelemetry Collector acknowledges after its pipeline accepted the records (with a
// sending queue or a batch processor in the pipeline, that is before they reach its
// exporters: configure the collector for durability too). The exporter's own retries are
// off: failures go back to the host, retryable or permanent as the OTLP specification says
// (see classify), and the host retries with backoff.
//
// The sink cannot read back what it sent: Head reports the last event this plugin process
// delivered (nothing after a restart, so the host resumes from its own cursor); an event
// repeated with another hash at one of the last forward.Window sequences delivered is refused
// as a conflict (sink.ErrConflict), and nothing of its batch is sent. A request the
// receiver stored but whose answer was lost is sent again; receivers can drop duplicates by
// log.record.uid.
//
// # A receiver that crashed
//
// An acknowledgement means the receiver's pipeline accepted the records, not that they are on
// disk: a collector killed (SIGKILL, OOM, power) loses what it had acknowledged but not yet
// written (an in-memory sending queue can hold thousands of records). OTLP's acknowledgement is the receiver's promise,
// so by default the sink trusts it and sends nothing twice but a request whose answer was
// lost. For a receiver known to acknowledge before it stores, replay_on_reconnect: N makes the
// sink export the last N acknowledged events again, before anything new, after an export that
// got no answer at all (connection refused, reset or timed out: the receiver went away); they
// may then arrive twice rather than never, and the sink logs how many. Better still, give the
// receiver a persistent queue (the collector's file_storage extension for its sending queue).
// The collector's file exporter writes each request through and buffers only the line's
// newline, so killing it loses nothing it acknowledged (TestCollectorDown).
//
// # Signed checkpoints
//
// With forward_checkpoints (the default), each signed checkpoint the sidecar makes is exported
// as a log record of its own: EventName and event.name AUDIT_CHECKPOINT, timestamp the
// checkpoint's, severity INFO, body = the checkpoint as one line of the sidecar's checkpoint log
// (the JSON `flowker-audit verify --checkpoints` reads), attributes flowker.audit.chain_id,
// flowker.audit.sequence, flowker.audit.hash, flowker.audit.checkpoint.key_id and
// flowker.audit.checkpoint.signature, resource as for the chain's events. The backend then
// holds a witness of the chain heads outside the sidecar's host; the signature verifies with
// the checkpoint public key.
//
// Configuration (JSON):
//
//	{"endpoint": "https://collector:4317", "protocol": "grpc", "compression": "gzip",
//	 "headers": {"x-tenant": "audit"}, "headers_env": {"authorization": "OTLP_AUTH"},
//	 "tls": {"ca_file": "/etc/ssl/collector-ca.pem"}, "service_name": "flowker-audit",
//	 "timeout": "10s", "max_request_bytes": 3145728, "replay_on_reconnect": 0,
//	 "forward_checkpoints": true}
package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/internal/forward"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Sink is the otlp sink. Create it with New.
type Sink struct {
	log     *slog.Logger
	heads   forward.Heads
	cpsSent forward.Forwarded // checkpoints forwarded by this process

	mu       sync.Mutex
	cfg      Config
	exporter sdklog.Exporter // nil until Configure
	outcome  outcome
	coll     collector
	loggers  map[string]*chainLogger
	buf      []byte // scratch for event JSON
	broken   bool   // an export got no answer: replay the ring (if any) before the next one
	ring     ring   // the last cfg.replay acknowledged events
	replayed uint64 // events sent again after the receiver was unreachable (for logs and tests)
}

// ring holds the last acknowledged events and their JSON, oldest first.
type ring struct {
	events []chain.Event
	bodies []string
}

// add appends events (and bodies) and keeps the last n.
func (r *ring) add(events []chain.Event, bodies []string, n int) {
	if n == 0 {
		return
	}
	r.events = append(r.events, events...)
	r.bodies = append(r.bodies, bodies...)
	if drop := len(r.events) - n; drop > 0 {
		r.events = append(r.events[:0:0], r.events[drop:]...)
		r.bodies = append(r.bodies[:0:0], r.bodies[drop:]...)
	}
}

// Replayed returns how many events were sent again, and acknowledged, after the receiver was
// unreachable (a replay whose answer was lost counts as a failed write).
func (s *Sink) Replayed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replayed
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

// New returns an unconfigured otlp sink; call Configure before anything else.
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

// Capabilities implements sink.Sink: write only.
func (s *Sink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true}, nil
}

// Configure implements sink.Sink. It builds the exporter; gRPC connects lazily, so a receiver
// that is down delays delivery, not start.
func (s *Sink) Configure(ctx context.Context, raw []byte) error {
	cfg, err := ParseConfig(raw)
	if err != nil {
		return sink.Permanent(err)
	}
	var tlsCfg *tls.Config
	if cfg.url.Scheme == "https" {
		if tlsCfg, err = cfg.TLS.Config(cfg.url.Hostname()); err != nil {
			return sink.Permanent(fmt.Errorf("invalid otlp sink configuration:\ntls.%w", err))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdownLocked(ctx)
	e, err := newExporter(ctx, &cfg, tlsCfg, &s.outcome)
	if err != nil {
		return sink.Permanent(err)
	}
	s.cfg, s.exporter, s.loggers = cfg, e, map[string]*chainLogger{}
	s.ring, s.broken = ring{}, false
	s.log.Info("otlp sink configured", "endpoint", cfg.url.Redacted(), "protocol", cfg.Protocol,
		"compression", cfg.Compression, "service_name", cfg.ServiceName, "headers", len(cfg.headers))
	return nil
}

// Head implements sink.Sink: the last event of chainID this process delivered.
func (s *Sink) Head(_ context.Context, chainID string) (sink.Head, error) {
	return s.heads.Head(chainID), nil
}

// Write implements sink.Sink: it returns nil once the receiver acknowledged every record.
func (s *Sink) Write(ctx context.Context, events []chain.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exporter == nil {
		return sink.Permanentf("otlp sink used before Configure (or after Close)")
	}
	fresh, err := s.heads.Fresh(events)
	if err != nil {
		return err
	}
	now := time.Now()
	// Each event's JSON, rendered once: the record's body, and its size splits the batch.
	bodies := make([]string, len(fresh))
	for i := range fresh {
		s.buf = fresh[i].AppendJSON(s.buf[:0])
		bodies[i] = string(s.buf)
	}
	if s.broken && len(s.ring.events) > 0 {
		if err := s.exportAll(ctx, s.ring.events, s.ring.bodies, now, nil); err != nil {
			return fmt.Errorf("replaying the last %d acknowledged events after the receiver was unreachable: %w", len(s.ring.events), err)
		}
		s.replayed += uint64(len(s.ring.events))
		s.log.Warn("sent the last acknowledged events again after the receiver was unreachable; it may hold them twice",
			"events", len(s.ring.events), "replayed_total", s.replayed)
	}
	s.broken = false
	return s.exportAll(ctx, fresh, bodies, now, func(events []chain.Event, bodies []string) {
		s.heads.Delivered(events)
		s.ring.add(events, bodies, s.cfg.replay)
	})
}

// exportAll sends events (whose JSON is bodies) in requests of at most about max_request_bytes
// and calls acked (when not nil) with the events of each acknowledged request.
func (s *Sink) exportAll(ctx context.Context, events []chain.Event, bodies []string, now time.Time, acked func([]chain.Event, []string)) error {
	for len(events) > 0 {
		// The body dominates a record's size; attributes and framing add a few hundred bytes.
		n, size := 0, 0
		for n < len(events) {
			size += len(bodies[n]) + 600
			if n > 0 && size > s.cfg.MaxRequestBytes {
				break
			}
			n++
		}
		if err := s.export(ctx, events[:n], bodies[:n], now); err != nil {
			return err
		}
		if acked != nil {
			acked(events[:n], bodies[:n])
		}
		events, bodies = events[n:], bodies[n:]
	}
	return nil
}

// export sends events (whose JSON is bodies) as one request. A request that got no answer at
// all (connection refused or reset, timed out) marks the receiver as unreachable: the next
// Write replays the ring first.
func (s *Sink) export(ctx context.Context, events []chain.Event, bodies []string, now time.Time) error {
	s.coll.records = s.coll.records[:0]
	for i := range events {
		s.emit(ctx, events[i].ChainID, record(&events[i], bodies[i], now))
	}
	return s.exportEmitted(ctx, len(events), func() string {
		return fmt.Sprintf("%d events (chain %s, sequences %d..%d)", len(events),
			events[0].ChainID, events[0].Sequence, events[len(events)-1].Sequence)
	})
}

// emit hands rec to the collecting processor through the logger of chainID (whose resource
// names the chain).
func (s *Sink) emit(ctx context.Context, chainID string, rec log.Record) {
	l := s.loggers[chainID]
	if l == nil {
		l = newChainLogger(s.cfg.ServiceName, chainID, &s.coll)
		s.loggers[chainID] = l
	}
	l.logger.Emit(ctx, rec)
}

// exportEmitted exports the n records emitted since s.coll was last reset as one request;
// what describes them in an error.
func (s *Sink) exportEmitted(ctx context.Context, n int, what func() string) error {
	if len(s.coll.records) != n {
		return fmt.Errorf("built %d log records for %s", len(s.coll.records), what())
	}
	s.outcome.reset()
	err := classify(s.exporter.Export(ctx, s.coll.records), &s.outcome)
	if err != nil && !s.outcome.answered.Load() {
		s.broken = true
	}
	if err != nil {
		return fmt.Errorf("exporting %s to %s: %w", what(), s.cfg.url.Redacted(), err)
	}
	return nil
}

// WriteCheckpoints implements sink.CheckpointWriter: with forward_checkpoints (the default),
// the signed checkpoints not forwarded yet by this process are exported as one request, one
// log record each (see checkpointRecord).
func (s *Sink) WriteCheckpoints(ctx context.Context, cps []sink.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exporter == nil {
		return sink.Permanentf("otlp sink used before Configure (or after Close)")
	}
	if !s.cfg.checkpoints {
		return nil
	}
	fresh := s.cpsSent.Fresh(cps)
	if len(fresh) == 0 {
		return nil
	}
	now := time.Now()
	s.coll.records = s.coll.records[:0]
	for i := range fresh {
		line, err := forward.NewCheckpointLine(fresh[i]).JSON()
		if err != nil {
			return sink.Permanent(err)
		}
		s.emit(ctx, fresh[i].ChainID, checkpointRecord(&fresh[i], string(line), now))
	}
	err := s.exportEmitted(ctx, len(fresh), func() string {
		return fmt.Sprintf("%d signed checkpoints (chain %s, sequences %d..%d)", len(fresh),
			fresh[0].ChainID, fresh[0].Sequence, fresh[len(fresh)-1].Sequence)
	})
	if err != nil {
		return err
	}
	s.cpsSent.Done(fresh)
	return nil
}

// Close implements sink.Sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdownLocked(ctx)
}

func (s *Sink) shutdownLocked(ctx context.Context) error {
	var errs []error
	if s.exporter != nil {
		errs = append(errs, s.exporter.Shutdown(ctx))
		s.exporter = nil
	}
	for _, l := range s.loggers {
		errs = append(errs, l.provider.Shutdown(ctx))
	}
	s.loggers = nil
	return errors.Join(errs...)
}
