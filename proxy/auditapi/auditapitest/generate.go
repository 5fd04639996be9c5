package auditapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
)

// GenOptions describes a generated chain.
type GenOptions struct {
	ChainID  string        // default "chain-a"
	Count    int           // number of events
	First    uint64        // sequence of the first event; default 1
	PrevHash string        // hash of event First-1 (ignored when First is 1)
	Start    time.Time     // timestamp of the first event; default 2026-03-01T00:00:00Z
	Step     time.Duration // time between events; default 1s (every 7th event repeats the previous timestamp)
	Seed     uint64        // deterministic output per seed
	// Resources is the number of distinct resource ids per resource type; default 8.
	Resources int
}

// APIKeyActors are the api_key actor ids the generator uses (fingerprints as the proxy writes them).
var APIKeyActors = []string{"key:3f9a1c2b4d5e6f70", "key:a1b2c3d4e5f60718", "key:0badc0ffee123456"}

// WorkflowNames are the workflow names the generator uses; one needs HTML escaping.
var WorkflowNames = []string{"Invoice approval", "KYC onboarding", "Nightly reconciliation", "Payout – São Paulo", `<img src=x onerror=alert(1)> & "quotes"`}

var genTypes = []struct {
	eventType, action, resourceType string
	weight                          int
}{
	{chain.WorkflowCreated, chain.ActionCreate, chain.ResourceWorkflow, 6},
	{chain.WorkflowUpdated, chain.ActionUpdate, chain.ResourceWorkflow, 8},
	{chain.WorkflowActivated, chain.ActionActivate, chain.ResourceWorkflow, 4},
	{chain.WorkflowDeactivated, chain.ActionDeactivate, chain.ResourceWorkflow, 2},
	{chain.WorkflowDrafted, chain.ActionDraft, chain.ResourceWorkflow, 2},
	{chain.WorkflowDeleted, chain.ActionDelete, chain.ResourceWorkflow, 1},
	{chain.ExecutionStarted, chain.ActionExecute, chain.ResourceExecution, 14},
	{chain.ExecutionCompleted, chain.ActionExecute, chain.ResourceExecution, 10},
	{chain.ExecutionFailed, chain.ActionExecute, chain.ResourceExecution, 4},
	{chain.ProviderConfigCreated, chain.ActionCreate, chain.ResourceProviderConfig, 2},
	{chain.ProviderConfigUpdated, chain.ActionUpdate, chain.ResourceProviderConfig, 3},
	{chain.ProviderConfigDeleted, chain.ActionDelete, chain.ResourceProviderConfig, 1},
	{chain.ExecutorConfigUpdated, chain.ActionUpdate, chain.ResourceExecutorConfig, 1},
	{chain.UnclassifiedMutation, chain.ActionUnknown, chain.ResourceUnknown, 1},
}

// Generate returns a valid hash chain of o.Count events with a deterministic mix of event types,
// results, actors, resources and metadata; context and metadata are canonical jsonb text.
func Generate(o GenOptions) []chain.Event {
	if o.ChainID == "" {
		o.ChainID = "chain-a"
	}
	if o.First == 0 {
		o.First = 1
	}
	if o.First == 1 {
		o.PrevHash = ""
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Step == 0 {
		o.Step = time.Second
	}
	if o.Resources <= 0 {
		o.Resources = 8
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed^uint64(len(o.ChainID))))
	newID := func() string {
		var u uuid.UUID
		for i := range u {
			u[i] = byte(rng.Uint32())
		}
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		return u.String()
	}
	pool := map[string][]string{}
	for _, rt := range chain.ResourceTypes {
		for range o.Resources {
			pool[rt] = append(pool[rt], newID())
		}
	}
	total := 0
	for _, t := range genTypes {
		total += t.weight
	}
	events := make([]chain.Event, o.Count)
	prev := o.PrevHash
	ts := chain.Now(o.Start)
	for i := range events {
		if i > 0 && i%7 != 0 {
			ts = ts.Add(o.Step)
		}
		pick := rng.IntN(total)
		t := genTypes[0]
		for _, c := range genTypes {
			if pick < c.weight {
				t = c
				break
			}
			pick -= c.weight
		}
		resIdx := rng.IntN(o.Resources)
		resID := pool[t.resourceType][resIdx]
		result := chain.ResultSuccess
		status := 200
		if t.eventType == chain.ExecutionFailed || (t.eventType != chain.ExecutionCompleted && rng.IntN(10) == 0) {
			result, status = chain.ResultFailed, 422
		}
		var actor chain.Actor
		switch r := rng.IntN(10); {
		case r < 5:
			actor = chain.Actor{Type: chain.ActorAPIKey, ID: APIKeyActors[rng.IntN(len(APIKeyActors))]}
		case r < 8:
			actor = chain.Actor{Type: chain.ActorUser, ID: fmt.Sprintf("user-%d", rng.IntN(5))}
		default:
			actor = chain.Actor{Type: chain.ActorSystem, ID: "flowker"}
		}
		actor.IPAddress = fmt.Sprintf("192.0.2.%d", 1+rng.IntN(250))
		meta := map[string]any{}
		switch t.resourceType {
		case chain.ResourceWorkflow:
			if t.eventType == chain.WorkflowDeleted {
				meta["workflow.id"] = resID
			} else {
				meta["workflow.name"] = fmt.Sprintf("%s %d", WorkflowNames[resIdx%len(WorkflowNames)], resIdx)
			}
		case chain.ResourceExecution:
			meta["workflow.id"] = pool[chain.ResourceWorkflow][rng.IntN(o.Resources)]
			if t.eventType == chain.ExecutionFailed {
				meta["error"] = "FLK-0504"
			}
		case chain.ResourceProviderConfig:
			if t.eventType == chain.ProviderConfigDeleted {
				meta["provider_config.id"] = resID
			} else {
				meta["provider_config.name"] = fmt.Sprintf("Provider %d", resIdx)
				meta["provider_config.provider_id"] = "midaz"
			}
		}
		ctx := map[string]any{}
		if actor.Type != chain.ActorSystem || i%3 == 0 {
			ctx["method"] = "POST"
			ctx["status"] = json.Number(fmt.Sprint(status))
			ctx["path"] = "/v1/" + strings.ReplaceAll(t.resourceType, "_", "-") + "s/" + resID
		}
		e := chain.Event{
			EventID:      newID(),
			EventType:    t.eventType,
			Action:       t.action,
			Result:       result,
			ResourceID:   resID,
			ResourceType: t.resourceType,
			Actor:        actor,
			Context:      JSONB(ctx),
			Metadata:     JSONB(meta),
			Timestamp:    ts,
			PreviousHash: prev,
			ChainID:      o.ChainID,
			Sequence:     o.First + uint64(i),
		}
		e.Seal()
		prev = e.Hash
		events[i] = e
	}
	return events
}

// JSONB renders a flat object of strings and json.Numbers as PostgreSQL's jsonb::text does
// (keys by length then bytewise, ": " and ", " separators, no HTML escaping).
func JSONB(m map[string]any) json.RawMessage {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) < len(keys[j])
		}
		return keys[i] < keys[j]
	})
	var b bytes.Buffer
	enc := func(v any) {
		var x bytes.Buffer
		e := json.NewEncoder(&x)
		e.SetEscapeHTML(false)
		_ = e.Encode(v)
		b.Write(bytes.TrimSuffix(x.Bytes(), []byte("\n")))
	}
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		enc(k)
		b.WriteString(": ")
		enc(m[k])
	}
	b.WriteByte('}')
	return json.RawMessage(b.Bytes())
}

// GenerateSpread returns n events in two interleaved chains ("chain-a", "chain-b") spread over
// the 30 days before end: the data set of the Audit Trail page's timing measurement.
func GenerateSpread(n int, end time.Time) []chain.Event {
	begin := end.Add(-30 * 24 * time.Hour)
	a := Generate(GenOptions{ChainID: "chain-a", Count: n / 2, Start: begin, Step: 25 * time.Second, Seed: 11})
	b := Generate(GenOptions{ChainID: "chain-b", Count: n - n/2, Start: begin.Add(3 * time.Second), Step: 25 * time.Second, Seed: 12})
	return append(a, b...)
}
