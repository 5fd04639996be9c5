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
// Configuration (JSON):
//
//	{"endpoint": "https://collector:4317", "protocol": "grpc", "compression": "gzip",
//	 "headers": {"x-tenant": "audit"}, "headers_env": {"authorization": "OTLP_AUTH"},
//	 "tls": {"ca_file": "/etc/ssl/collector-ca.pem"}, "service_name": "flowker-audit",
//	 "timeout": "10s", "max_request_bytes": 3145728}
package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/plugins/internal/forward"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Sink is the otlp sink. Create it with New.
type Sink struct {
	log   *slog.Logger
	heads forward.Heads

	mu       sync.Mutex
	cfg      Config
	exporter sdklog.Exporter // nil until Configure
	outcome  outcome
	coll     collector
	loggers  map[string]*chainLogger
	buf      []byte // scratch for event JSON
}

// Interface guards.
var (
	_ sink.Sink      = (*Sink)(nil)
	_ sink.Validator = (*Sink)(nil)
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
	for len(fresh) > 0 {
		// One request of at most about max_request_bytes (the body dominates; attributes and
		// framing add a few hundred bytes per record).
		n, size := 0, 0
		for n < len(fresh) {
			size += len(bodies[n]) + 600
			if n > 0 && size > s.cfg.MaxRequestBytes {
				break
			}
			n++
		}
		if err := s.export(ctx, fresh[:n], bodies[:n], now); err != nil {
			return err
		}
		s.heads.Delivered(fresh[:n])
		fresh, bodies = fresh[n:], bodies[n:]
	}
	return nil
}

// export sends events (whose JSON is bodies) as one request.
func (s *Sink) export(ctx context.Context, events []chain.Event, bodies []string, now time.Time) error {
	s.coll.records = s.coll.records[:0]
	for i := range events {
		e := &events[i]
		l := s.loggers[e.ChainID]
		if l == nil {
			l = newChainLogger(s.cfg.ServiceName, e.ChainID, &s.coll)
			s.loggers[e.ChainID] = l
		}
		l.logger.Emit(ctx, record(e, bodies[i], now))
	}
	if len(s.coll.records) != len(events) {
		return fmt.Errorf("built %d log records for %d events", len(s.coll.records), len(events))
	}
	s.outcome.reset()
	err := classify(s.exporter.Export(ctx, s.coll.records), &s.outcome)
	if err != nil {
		return fmt.Errorf("exporting %d events (chain %s, sequences %d..%d) to %s: %w", len(events),
			events[0].ChainID, events[0].Sequence, events[len(events)-1].Sequence, s.cfg.url.Redacted(), err)
	}
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
