// Package chain holds the audit event model and the SHA-256 hash chain that links events.
//
// An Event has the wire shape of Flowker's AuditEntryOutput plus two additive fields, chainId and
// sequence. Its hash is computed exactly like Flowker's PostgreSQL trigger
// (calculate_audit_event_hash), over the 13-field canonical input
//
//	previousHash|eventId|eventType|action|result|resourceId|resourceType|actorType|actorId|actorIp|context|metadata|timestamp
//
// with GENESIS in place of the previous hash for the first event of a chain, context and metadata
// rendered as PostgreSQL's jsonb::text (package chain/jsonb) and the timestamp as
// YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC.
//
// One deliberate deviation: Flowker hashes input::bytea, which makes PostgreSQL decode backslash
// escapes first (and fail the insert, losing the event, when a string contains a quote or a control
// character). We hash the plain UTF-8 bytes of the input and never drop an event. Both agree whenever
// the input has no backslash; FlowkerHash reproduces Flowker's variant for checking rows written by
// Flowker itself.
package chain

import (
	"encoding/json"
	"time"
)

// Event types. The first twelve are Flowker's own enum (PROVIDER_CALL_* exist there but are never
// emitted); the others name state changes Flowker does not audit natively.
const (
	WorkflowCreated       = "WORKFLOW_CREATED"
	WorkflowUpdated       = "WORKFLOW_UPDATED"
	WorkflowActivated     = "WORKFLOW_ACTIVATED"
	WorkflowDeactivated   = "WORKFLOW_DEACTIVATED"
	WorkflowDrafted       = "WORKFLOW_DRAFTED"
	WorkflowDeleted       = "WORKFLOW_DELETED"
	ExecutionStarted      = "EXECUTION_STARTED"
	ExecutionCompleted    = "EXECUTION_COMPLETED"
	ExecutionFailed       = "EXECUTION_FAILED"
	ProviderConfigCreated = "PROVIDER_CONFIG_CREATED"
	ProviderConfigUpdated = "PROVIDER_CONFIG_UPDATED"
	ProviderConfigDeleted = "PROVIDER_CONFIG_DELETED"
	ProviderCallStarted   = "PROVIDER_CALL_STARTED"
	ProviderCallCompleted = "PROVIDER_CALL_COMPLETED"
	ProviderCallFailed    = "PROVIDER_CALL_FAILED"

	// ExecutorConfigUpdated and ExecutorConfigDeleted record PATCH/DELETE /v1/executors/{id}.
	ExecutorConfigUpdated = "EXECUTOR_CONFIG_UPDATED"
	ExecutorConfigDeleted = "EXECUTOR_CONFIG_DELETED"
	// UnclassifiedMutation records a mutating request that matched no route rule.
	UnclassifiedMutation = "UNCLASSIFIED_MUTATION"
)

// Actions: Flowker's enum plus UNKNOWN for unclassified mutations.
const (
	ActionCreate     = "CREATE"
	ActionUpdate     = "UPDATE"
	ActionDelete     = "DELETE"
	ActionActivate   = "ACTIVATE"
	ActionDeactivate = "DEACTIVATE"
	ActionDraft      = "DRAFT"
	ActionExecute    = "EXECUTE"
	ActionUnknown    = "UNKNOWN"
)

// Results. Flowker knows SUCCESS and FAILED; UNKNOWN is the sidecar's own, like ActionUnknown:
// an event rebuilt from an intent whose outcome could not be learned from Flowker (its context
// says "outcome": "unknown" and why). It is never SUCCESS or FAILED unless that was observed.
const (
	ResultSuccess = "SUCCESS"
	ResultFailed  = "FAILED"
	ResultUnknown = "UNKNOWN"
)

// Resource types: Flowker's enum plus executor_config and unknown.
const (
	ResourceWorkflow       = "workflow"
	ResourceExecution      = "execution"
	ResourceProviderConfig = "provider_config"
	ResourceExecutorConfig = "executor_config"
	ResourceUnknown        = "unknown"
)

// Actor types (Flowker's enum).
const (
	ActorUser   = "user"
	ActorSystem = "system"
	ActorAPIKey = "api_key"
)

// EventTypes lists every event type the sidecar can record, in display order.
var EventTypes = []string{
	WorkflowCreated, WorkflowUpdated, WorkflowActivated, WorkflowDeactivated, WorkflowDrafted, WorkflowDeleted,
	ExecutionStarted, ExecutionCompleted, ExecutionFailed,
	ProviderConfigCreated, ProviderConfigUpdated, ProviderConfigDeleted,
	ProviderCallStarted, ProviderCallCompleted, ProviderCallFailed,
	ExecutorConfigUpdated, ExecutorConfigDeleted, UnclassifiedMutation,
}

// Actions lists every action.
var Actions = []string{ActionCreate, ActionUpdate, ActionDelete, ActionActivate, ActionDeactivate, ActionDraft, ActionExecute, ActionUnknown}

// Results lists every result.
var Results = []string{ResultSuccess, ResultFailed, ResultUnknown}

// ResourceTypes lists every resource type.
var ResourceTypes = []string{ResourceWorkflow, ResourceExecution, ResourceProviderConfig, ResourceExecutorConfig, ResourceUnknown}

// ActorTypes lists every actor type.
var ActorTypes = []string{ActorUser, ActorSystem, ActorAPIKey}

// Actor is who performed the audited action.
type Actor struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	IPAddress string `json:"ipAddress"`
}

// Event is one audit record. Context and Metadata hold canonical jsonb text (see package
// chain/jsonb); they are exactly the bytes that were hashed, and an empty object is "{}".
// Timestamp is UTC with microsecond precision.
type Event struct {
	EventID      string          `json:"eventId"`
	EventType    string          `json:"eventType"`
	Action       string          `json:"action"`
	Result       string          `json:"result"`
	ResourceID   string          `json:"resourceId"`
	ResourceType string          `json:"resourceType"`
	Actor        Actor           `json:"actor"`
	Context      json.RawMessage `json:"context"`
	Metadata     json.RawMessage `json:"metadata"`
	Timestamp    time.Time       `json:"timestamp"`
	Hash         string          `json:"hash"`
	PreviousHash string          `json:"previousHash,omitempty"`
	ChainID      string          `json:"chainId"`
	Sequence     uint64          `json:"sequence"`
	// ConflictingDuplicate is set on reads when the store holds another, conflicting row at this
	// event's (chainId, sequence): this is the one that links into the chain. Not hashed, not
	// stored, not part of the event's JSON (the audit API reports it beside the event).
	ConflictingDuplicate bool `json:"-"`
}

// Genesis stands for the previous hash of a chain's first event in the canonical input.
const Genesis = "GENESIS"

// TimestampLayout is the timestamp rendering used in the canonical input (always six fractional
// digits, UTC), identical to Flowker's to_char(created_at AT TIME ZONE 'UTC',
// 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"').
const TimestampLayout = "2006-01-02T15:04:05.000000Z"

// Now returns t in UTC truncated to microseconds, the precision events carry.
func Now(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
