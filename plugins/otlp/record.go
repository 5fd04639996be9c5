package otlp

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// scopeName is the instrumentation scope of every record.
const scopeName = "github.com/flowker-audit/flowker-audit/plugins/otlp"

// collector is an SDK log processor that keeps the records emitted through it, so that the
// sink builds records with the SDK (resource, scope, limits) and hands them to the exporter
// itself, synchronously, seeing every error.
type collector struct{ records []sdklog.Record }

func (c *collector) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collector) Shutdown(context.Context) error                         { return nil }
func (c *collector) ForceFlush(context.Context) error                       { return nil }

// chainLogger emits the records of one chain: its resource carries service.instance.id = the
// chain id.
type chainLogger struct {
	provider *sdklog.LoggerProvider
	logger   log.Logger
}

func newChainLogger(serviceName, chainID string, c *collector) *chainLogger {
	res := resource.NewSchemaless(
		semconv.ServiceName(serviceName),
		semconv.ServiceInstanceID(chainID),
	)
	// Keys are unique by construction (record), so the SDK's duplicate-key check is skipped:
	// it cost about a quarter of the sink's CPU per event.
	p := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(c),
		sdklog.WithAttributeValueLengthLimit(-1), sdklog.WithAttributeCountLimit(64),
		sdklog.WithAllowKeyDuplication())
	return &chainLogger{provider: p, logger: p.Logger(scopeName)}
}

// Semantic-convention keys the semconv package of this version does not define: user.id
// (the user registry, semconv 1.26-1.30) and event.name (before the event name became the
// record's EventName field, which is set as well, for receivers that only read attributes).
const (
	attrUserID    = "user.id"
	attrEventName = "event.name"
)

// Attribute keys without a semantic convention.
const (
	attrPrefix       = "flowker.audit."
	attrEventType    = attrPrefix + "event_type"
	attrAction       = attrPrefix + "action"
	attrResult       = attrPrefix + "result"
	attrActorType    = attrPrefix + "actor.type"
	attrActorID      = attrPrefix + "actor.id"
	attrResourceType = attrPrefix + "resource.type"
	attrResourceID   = attrPrefix + "resource.id"
	attrChainID      = attrPrefix + "chain_id"
	attrSequence     = attrPrefix + "sequence"
	attrHash         = attrPrefix + "hash"
	attrPreviousHash = attrPrefix + "previous_hash"
	attrCPKeyID      = attrPrefix + "checkpoint.key_id"
	attrCPSignature  = attrPrefix + "checkpoint.signature"
)

// CheckpointEventName is the event name of a forwarded signed checkpoint (event types are
// other words).
const CheckpointEventName = "AUDIT_CHECKPOINT"

// checkpointRecord builds the log record of a signed checkpoint: body = its checkpoint-log JSON
// (line), event name AUDIT_CHECKPOINT, severity INFO, timestamp the checkpoint's, and its fields
// as attributes.
func checkpointRecord(c *sink.Checkpoint, line string, now time.Time) log.Record {
	var r log.Record
	r.SetTimestamp(c.Time)
	r.SetObservedTimestamp(now)
	r.SetSeverity(log.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetEventName(CheckpointEventName)
	r.SetBody(attribute.StringValue(line))
	r.AddAttributes(
		attribute.String(attrEventName, CheckpointEventName),
		attribute.String(attrChainID, c.ChainID),
		attribute.Int64(attrSequence, int64(c.Sequence)),
		attribute.String(attrHash, c.Hash),
		attribute.String(attrCPKeyID, c.KeyID),
		attribute.String(attrCPSignature, c.Signature),
	)
	return r
}

// record builds the log record of e: the body is the event's JSON (e.AppendJSON) exactly as the audit API
// returns it (so each hash can be recomputed downstream); the event name is the event type;
// severity INFO for SUCCESS, WARN otherwise; timestamp the event's, observed timestamp now.
// Attributes follow the semantic conventions where one fits — event.name, log.record.uid (the
// event id), user.id (the actor of a user or API-key event), client.address (the actor's IP) —
// and flowker.audit.* for the rest.
func record(e *chain.Event, body string, now time.Time) log.Record {
	var r log.Record
	r.SetTimestamp(e.Timestamp)
	r.SetObservedTimestamp(now)
	if e.Result == chain.ResultSuccess {
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
	} else {
		r.SetSeverity(log.SeverityWarn)
		r.SetSeverityText("WARN")
	}
	r.SetEventName(e.EventType)
	r.SetBody(attribute.StringValue(body))
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs,
		attribute.String(attrEventName, e.EventType),
		attribute.String(string(semconv.LogRecordUIDKey), e.EventID),
		attribute.String(attrEventType, e.EventType),
		attribute.String(attrAction, e.Action),
		attribute.String(attrResult, e.Result),
		attribute.String(attrActorType, e.Actor.Type),
		attribute.String(attrActorID, e.Actor.ID),
		attribute.String(attrResourceType, e.ResourceType),
		attribute.String(attrResourceID, e.ResourceID),
		attribute.String(attrChainID, e.ChainID),
		attribute.Int64(attrSequence, int64(e.Sequence)),
		attribute.String(attrHash, e.Hash),
	)
	if e.PreviousHash != "" {
		attrs = append(attrs, attribute.String(attrPreviousHash, e.PreviousHash))
	}
	if e.Actor.Type == chain.ActorUser || e.Actor.Type == chain.ActorAPIKey {
		attrs = append(attrs, attribute.String(attrUserID, e.Actor.ID))
	}
	if e.Actor.IPAddress != "" {
		attrs = append(attrs, attribute.String(string(semconv.ClientAddressKey), e.Actor.IPAddress))
	}
	r.AddAttributes(attrs...)
	return r
}
