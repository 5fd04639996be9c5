package sinktest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
)

// DefaultStart is the timestamp lower bound of a generated chain when GenOptions.Start is zero.
var DefaultStart = time.Date(2026, time.March, 2, 9, 0, 0, 0, time.UTC)

// GenOptions controls GenerateChain. The zero value is usable.
type GenOptions struct {
	// Seed selects the pseudo-random stream. The same chainID, options and seed always produce
	// the same events. Resource pools (workflows, provider and executor configurations) depend on
	// the seed only, so chains generated with one seed share resources, as sidecar replicas in
	// front of one Flowker do.
	Seed int64
	// Start is the earliest possible timestamp of the first generated event; zero means
	// DefaultStart. Chains generated with the same Start interleave in time, and because some
	// events fall on whole seconds, they share some timestamps.
	Start time.Time
	// After, when set, continues that chain: the first event gets sequence After.Sequence+1,
	// links to After.Hash and is later than both After.Timestamp and Start.
	After *chain.Event
	// MeanGap is the mean time between consecutive events of the chain; zero means 250ms.
	MeanGap time.Duration
	// Workflows is the number of distinct workflows events refer to (popularity is Zipf-skewed);
	// zero means 200.
	Workflows int
}

// GenerateChain returns n sealed events of chain chainID forming a valid hash chain: sequences
// count up from 1 (or from opts.After), every PreviousHash links to the previous event's Hash,
// timestamps are strictly increasing UTC microseconds. The events mix Flowker's event types,
// actions, results and resource types with realistic frequencies; resource ids are UUIDs with
// skewed popularity; context is 0.5–2 KiB of canonical jsonb text (method, path, route, status,
// user agent, nested request and response bodies) and metadata carries Flowker's dotted keys.
func GenerateChain(chainID string, n int, opts GenOptions) []chain.Event {
	g := newGenerator(chainID, opts)
	out := make([]chain.Event, 0, n)
	for range n {
		out = append(out, g.next())
	}
	return out
}

type eventKind struct {
	eventType    string
	action       string
	resourceType string
	weight       int
}

// kinds lists the event types the generator emits, with relative frequencies. PROVIDER_CALL_*
// exist in Flowker's enum but are never emitted, so they are absent here too.
var kinds = []eventKind{
	{chain.ExecutionStarted, chain.ActionExecute, chain.ResourceExecution, 300},
	{chain.ExecutionCompleted, chain.ActionExecute, chain.ResourceExecution, 220},
	{chain.ExecutionFailed, chain.ActionExecute, chain.ResourceExecution, 40},
	{chain.WorkflowUpdated, chain.ActionUpdate, chain.ResourceWorkflow, 110},
	{chain.WorkflowCreated, chain.ActionCreate, chain.ResourceWorkflow, 60},
	{chain.WorkflowActivated, chain.ActionActivate, chain.ResourceWorkflow, 50},
	{chain.WorkflowDeactivated, chain.ActionDeactivate, chain.ResourceWorkflow, 30},
	{chain.WorkflowDrafted, chain.ActionDraft, chain.ResourceWorkflow, 15},
	{chain.WorkflowDeleted, chain.ActionDelete, chain.ResourceWorkflow, 15},
	{chain.ProviderConfigCreated, chain.ActionCreate, chain.ResourceProviderConfig, 20},
	{chain.ProviderConfigUpdated, chain.ActionUpdate, chain.ResourceProviderConfig, 70},
	{chain.ProviderConfigDeleted, chain.ActionDelete, chain.ResourceProviderConfig, 8},
	{chain.ExecutorConfigUpdated, chain.ActionUpdate, chain.ResourceExecutorConfig, 25},
	{chain.ExecutorConfigDeleted, chain.ActionDelete, chain.ResourceExecutorConfig, 5},
	{chain.UnclassifiedMutation, chain.ActionUnknown, chain.ResourceUnknown, 12},
}

var workflowNames = []string{
	"Payments KYC", "Onboarding PF", "Onboarding PJ", "Análise de crédito", "Fraud <score> & alerts",
	`C:\temp é`, `Relatório "mensal"`, "🚀 launch flow", "Chargeback dispute", "Pix limits",
	"Card issuing", "AML screening", "Tab\tseparated import", "Loan origination", "Refund approval",
	"Merchant risk review", "Daily settlement", "Ünïcödé naming test", "Collections D+30", "Tracer enrichment",
}

var providers = []string{"tracer", "serasa", "idwall", "unico", "stripe-radar", "internal-ledger"}

var userAgents = []string{
	"flowker-cli/1.4.2 (linux; amd64)",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
	"python-requests/2.32.3",
	"Go-http-client/1.1",
	"curl/8.5.0",
	"okhttp/4.12.0",
}

var failures = []struct {
	status int
	code   string
	title  string
	msg    string
}{
	{400, "FLK-0001", "Bad Request", "invalid request body"},
	{400, "FLK-0002", "Bad Request", "invalid id format, expected UUID"},
	{404, "FLK-0100", "Not Found", "workflow not found"},
	{409, "FLK-0103", "Conflict", "workflow is not in draft status"},
	{422, "FLK-0105", "Unprocessable Entity", "workflow graph has no trigger node"},
	{500, "FLK-9999", "Internal Server Error", "internal server error"},
	{502, "FLK-0504", "Bad Gateway", "executor call failed"},
}

type resourcePools struct {
	workflows       []string
	workflowZipf    *rand.Zipf
	providerConfigs []string
	executorConfigs []string
	apiKeys         []string
	users           []string
	ips             []string
}

type generator struct {
	chainID string
	opts    GenOptions
	rng     *rand.Rand
	pools   resourcePools
	seq     uint64
	prev    string
	lastUs  int64
	pending []string // executions started and not finished yet
}

func newGenerator(chainID string, opts GenOptions) *generator {
	if opts.MeanGap <= 0 {
		opts.MeanGap = 250 * time.Millisecond
	}
	if opts.Workflows <= 0 {
		opts.Workflows = 200
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	h := fnv.New64a()
	h.Write([]byte(chainID))
	g := &generator{chainID: chainID, opts: opts, seq: 1}
	startUs := opts.Start.UnixMicro() - 1
	if opts.After != nil {
		g.seq = opts.After.Sequence + 1
		g.prev = opts.After.Hash
		startUs = max(startUs, opts.After.Timestamp.UnixMicro())
	}
	g.lastUs = startUs
	g.rng = rand.New(rand.NewPCG(uint64(opts.Seed), h.Sum64()^g.seq*0x9e3779b97f4a7c15))
	g.pools = newPools(opts.Seed, opts.Workflows)
	// The pools' Zipf generator must draw from this chain's stream, not the shared pool seed.
	g.pools.workflowZipf = rand.NewZipf(g.rng, 1.15, 2, uint64(len(g.pools.workflows)-1))
	return g
}

func newPools(seed int64, workflows int) resourcePools {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed5eed5eed5eed))
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid4(r)
		}
		return out
	}
	p := resourcePools{workflows: ids(workflows), providerConfigs: ids(16), executorConfigs: ids(8)}
	for range 5 {
		p.apiKeys = append(p.apiKeys, fmt.Sprintf("ak_%016x", r.Uint64()))
	}
	first := []string{"ana", "bruno", "carla", "diego", "elisa", "fabio", "gabi", "heitor", "iris", "joao", "karen", "lucas"}
	for i, f := range first {
		if i%3 == 0 {
			p.users = append(p.users, fmt.Sprintf("auth0|%012x", r.Uint64()&0xffffffffffff))
		} else {
			p.users = append(p.users, f+".silva@example.com")
		}
	}
	for range 24 {
		if r.IntN(6) == 0 {
			p.ips = append(p.ips, fmt.Sprintf("2001:db8:%x::%x", r.IntN(0xffff), r.IntN(0xffff)))
		} else {
			p.ips = append(p.ips, fmt.Sprintf("10.%d.%d.%d", 20+r.IntN(4), r.IntN(256), 1+r.IntN(254)))
		}
	}
	return p
}

func uuid4(r *rand.Rand) string {
	var b [16]byte
	hi, lo := r.Uint64(), r.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// nextTimestamp advances the chain clock: exponential gaps around MeanGap, occasional bursts a
// few hundred microseconds apart, and about one event in eight on a whole second (which is where
// chains generated with the same Start meet).
func (g *generator) nextTimestamp() time.Time {
	meanUs := float64(g.opts.MeanGap.Microseconds())
	var gap int64
	if g.rng.IntN(10) == 0 {
		gap = 1 + g.rng.Int64N(500)
	} else {
		gap = max(1, int64(g.rng.ExpFloat64()*meanUs))
	}
	ts := g.lastUs + gap
	if g.rng.IntN(8) == 0 {
		const sec = int64(time.Second / time.Microsecond)
		ts = (g.lastUs/sec + 1) * sec
	}
	g.lastUs = ts
	return time.UnixMicro(ts).UTC()
}

func (g *generator) pickKind() eventKind {
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	n := g.rng.IntN(total)
	for _, k := range kinds {
		if n < k.weight {
			return k
		}
		n -= k.weight
	}
	return kinds[0]
}

func (g *generator) workflow() string { return g.pools.workflows[g.pools.workflowZipf.Uint64()] }

func (g *generator) next() chain.Event {
	k := g.pickKind()
	ts := g.nextTimestamp()
	e := chain.Event{
		EventID:      uuid4(g.rng),
		EventType:    k.eventType,
		Action:       k.action,
		Result:       chain.ResultSuccess,
		ResourceType: k.resourceType,
		ChainID:      g.chainID,
		Sequence:     g.seq,
		PreviousHash: g.prev,
		Timestamp:    ts,
	}
	req := g.request(&e, k)
	e.Context = canonical(req.context())
	e.Metadata = canonical(req.metadata)
	e.Seal()
	g.seq++
	g.prev = e.Hash
	return e
}

// exchange is what the sidecar observed for one event.
type exchange struct {
	method, path, route, query string
	status                     int
	errCode                    string
	reqBody, respBody          any
	metadata                   obj
	userAgent                  string
	durTotal, durUpstream      float64
	requestID, clientReqID     string
}

func (x *exchange) context() obj {
	c := obj{
		"method":     x.method,
		"path":       x.path,
		"route":      x.route,
		"query":      x.query,
		"status":     x.status,
		"requestId":  x.requestID,
		"userAgent":  x.userAgent,
		"durationMs": obj{"total": num(strconv.FormatFloat(x.durTotal, 'f', 3, 64)), "upstream": num(strconv.FormatFloat(x.durUpstream, 'f', 3, 64))},
		"response":   body(x.respBody),
	}
	if x.reqBody != nil {
		c["request"] = body(x.reqBody)
	}
	if x.errCode != "" {
		c["errorCode"] = x.errCode
	}
	if x.clientReqID != "" {
		c["clientRequestId"] = x.clientReqID
	}
	return c
}

func body(v any) obj {
	raw := canonical(v)
	sum := sha256.Sum256(raw)
	return obj{"body": v, "bytes": len(raw), "sha256": hex.EncodeToString(sum[:]), "truncated": false, "contentType": "application/json"}
}

func (g *generator) request(e *chain.Event, k eventKind) *exchange {
	r := g.rng
	x := &exchange{
		status:      200,
		userAgent:   pick(r, userAgents),
		requestID:   uuid4(r),
		durUpstream: 2 + r.ExpFloat64()*35,
		metadata:    obj{},
	}
	x.durTotal = x.durUpstream + 0.2 + r.Float64()*1.5
	if r.IntN(4) == 0 {
		x.clientReqID = fmt.Sprintf("req-%08x", r.Uint32())
	}
	switch r.IntN(10) {
	case 0, 1, 2:
		e.Actor = chain.Actor{Type: chain.ActorUser, ID: pick(r, g.pools.users), IPAddress: pick(r, g.pools.ips)}
	default:
		e.Actor = chain.Actor{Type: chain.ActorAPIKey, ID: pick(r, g.pools.apiKeys), IPAddress: pick(r, g.pools.ips)}
	}
	name := pick(r, workflowNames)
	switch k.eventType {
	case chain.WorkflowCreated:
		e.ResourceID = uuid4(r)
		x.method, x.path, x.route = "POST", "/v1/workflows", "/v1/workflows"
		x.status = 201
		x.reqBody = g.workflowBody(name)
		x.respBody = obj{"workflowId": e.ResourceID, "name": name, "status": "draft", "createdAt": e.Timestamp.Format(time.RFC3339Nano)}
		x.metadata["workflow.name"] = name
	case chain.WorkflowUpdated:
		e.ResourceID = g.workflow()
		x.method, x.path, x.route = "PUT", "/v1/workflows/"+e.ResourceID, "/v1/workflows/{id}"
		x.reqBody = g.workflowBody(name)
		x.respBody = obj{"workflowId": e.ResourceID, "name": name, "status": "draft", "updatedAt": e.Timestamp.Format(time.RFC3339Nano)}
		x.metadata["workflow.name"] = name
	case chain.WorkflowActivated, chain.WorkflowDeactivated, chain.WorkflowDrafted:
		e.ResourceID = g.workflow()
		verb := map[string]string{chain.WorkflowActivated: "activate", chain.WorkflowDeactivated: "deactivate", chain.WorkflowDrafted: "draft"}[k.eventType]
		status := map[string]string{chain.WorkflowActivated: "active", chain.WorkflowDeactivated: "inactive", chain.WorkflowDrafted: "draft"}[k.eventType]
		x.method, x.path, x.route = "POST", "/v1/workflows/"+e.ResourceID+"/"+verb, "/v1/workflows/{id}/"+verb
		x.respBody = g.workflowSnapshot(e.ResourceID, name, status)
		x.metadata["workflow.name"] = name
	case chain.WorkflowDeleted:
		e.ResourceID = g.workflow()
		x.method, x.path, x.route = "DELETE", "/v1/workflows/"+e.ResourceID, "/v1/workflows/{id}"
		x.status = 204
		x.respBody = obj{}
		x.metadata["workflow.id"] = e.ResourceID
	case chain.ExecutionStarted:
		e.ResourceID = uuid4(r)
		wf := g.workflow()
		x.method, x.path, x.route = "POST", "/v1/workflows/"+wf+"/executions", "/v1/workflows/{workflowId}/executions"
		x.status = 202
		x.reqBody = g.executionInput()
		x.respBody = obj{"executionId": e.ResourceID, "workflowId": wf, "status": "running", "startedAt": e.Timestamp.Format(time.RFC3339Nano)}
		x.metadata["workflow.id"] = wf
		g.pending = append(g.pending, e.ResourceID)
		if len(g.pending) > 64 {
			g.pending = g.pending[1:]
		}
	case chain.ExecutionCompleted, chain.ExecutionFailed:
		e.ResourceID = g.takePending()
		e.Actor = chain.Actor{Type: chain.ActorSystem, ID: "flowker-audit", IPAddress: "0.0.0.0"}
		wf := g.workflow()
		x.method, x.path, x.route = "GET", "/v1/executions/"+e.ResourceID, "/v1/executions/{id}"
		x.userAgent = "flowker-audit-watcher/1.0"
		x.metadata["workflow.id"] = wf
		snap := obj{"executionId": e.ResourceID, "workflowId": wf, "startedAt": e.Timestamp.Add(-time.Duration(r.IntN(90_000)) * time.Millisecond).Format(time.RFC3339Nano),
			"completedAt": e.Timestamp.Format(time.RFC3339Nano), "steps": g.steps()}
		if k.eventType == chain.ExecutionFailed {
			e.Result = chain.ResultFailed
			x.metadata["error"] = "FLK-0504"
			snap["status"] = "failed"
			snap["errorMessage"] = fmt.Sprintf("node \"n%d\": executor call failed after 5 attempts: upstream returned 503", 1+r.IntN(6))
		} else {
			snap["status"] = "completed"
			snap["outputData"] = obj{"decision": pick(r, []string{"approved", "rejected", "manual_review"}), "score": num(strconv.Itoa(r.IntN(1000)))}
		}
		x.respBody = snap
	case chain.ProviderConfigCreated:
		e.ResourceID = uuid4(r)
		prov := pick(r, providers)
		cfgName := prov + " " + pick(r, []string{"prod", "sandbox", "dr"})
		x.method, x.path, x.route = "POST", "/v1/provider-configurations", "/v1/provider-configurations"
		x.status = 201
		x.reqBody = g.providerBody(cfgName, prov)
		x.respBody = obj{"id": e.ResourceID, "name": cfgName, "providerId": prov, "status": "active"}
		x.metadata["provider_config.name"] = cfgName
		x.metadata["provider_config.provider_id"] = prov
	case chain.ProviderConfigUpdated:
		e.ResourceID = pick(r, g.pools.providerConfigs)
		prov := pick(r, providers)
		cfgName := prov + " " + pick(r, []string{"prod", "sandbox", "dr"})
		switch r.IntN(3) {
		case 0:
			verb := pick(r, []string{"enable", "disable"})
			x.method, x.path, x.route = "POST", "/v1/provider-configurations/"+e.ResourceID+"/"+verb, "/v1/provider-configurations/{id}/"+verb
		default:
			x.method, x.path, x.route = "PATCH", "/v1/provider-configurations/"+e.ResourceID, "/v1/provider-configurations/{id}"
			x.reqBody = g.providerBody(cfgName, prov)
		}
		x.respBody = obj{"id": e.ResourceID, "name": cfgName, "providerId": prov, "status": "active"}
		x.metadata["provider_config.name"] = cfgName
	case chain.ProviderConfigDeleted:
		e.ResourceID = pick(r, g.pools.providerConfigs)
		x.method, x.path, x.route = "DELETE", "/v1/provider-configurations/"+e.ResourceID, "/v1/provider-configurations/{id}"
		x.status = 204
		x.respBody = obj{}
		x.metadata["provider_config.id"] = e.ResourceID
	case chain.ExecutorConfigUpdated:
		e.ResourceID = pick(r, g.pools.executorConfigs)
		x.method, x.path, x.route = "PATCH", "/v1/executors/"+e.ResourceID, "/v1/executors/{id}"
		x.reqBody = obj{"timeoutMs": 1000 * (1 + r.IntN(30)), "retry": obj{"maxAttempts": 1 + r.IntN(5), "backoff": "exponential", "initialDelayMs": 1000}, "endpoint": fmt.Sprintf("https://executor-%d.internal.example.com/run", r.IntN(9))}
		x.respBody = obj{"id": e.ResourceID, "updated": true}
	case chain.ExecutorConfigDeleted:
		e.ResourceID = pick(r, g.pools.executorConfigs)
		x.method, x.path, x.route = "DELETE", "/v1/executors/"+e.ResourceID, "/v1/executors/{id}"
		x.status = 204
		x.respBody = obj{}
	default: // unclassified mutation
		seg := pick(r, []string{"imports", "bulk", "experiments", "admin/cache"})
		x.method = pick(r, []string{"POST", "PUT", "PATCH", "DELETE"})
		x.path = "/v1/" + seg + "/" + strconv.Itoa(r.IntN(1000))
		x.route = ""
		x.reqBody = obj{"note": "payload of an unknown route", "items": arr{num(strconv.Itoa(r.IntN(100))), num("1.50"), true, nil}}
		x.respBody = obj{"ok": true}
	}
	if r.IntN(3) == 0 {
		x.query = fmt.Sprintf("dryRun=false&trace=%d", r.IntN(100))
	}
	// Requests the sidecar saw fail are audited too (Flowker itself never records them).
	if x.method != "GET" && k.eventType != chain.UnclassifiedMutation && r.IntN(16) == 0 {
		f := pick(r, failures)
		e.Result = chain.ResultFailed
		x.status, x.errCode = f.status, f.code
		x.respBody = obj{"code": f.code, "title": f.title, "message": f.msg}
		x.metadata["error"] = f.code
	}
	return x
}

func (g *generator) takePending() string {
	if len(g.pending) == 0 {
		return uuid4(g.rng)
	}
	i := g.rng.IntN(len(g.pending))
	id := g.pending[i]
	g.pending = append(g.pending[:i], g.pending[i+1:]...)
	return id
}

func (g *generator) workflowBody(name string) obj {
	r := g.rng
	n := 1 + r.IntN(5)
	nodes := make(arr, 0, n+1)
	edges := make(arr, 0, n)
	nodes = append(nodes, obj{"id": "trigger", "type": "trigger", "data": obj{"kind": pick(r, []string{"webhook", "manual", "schedule"})}})
	prev := "trigger"
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		nodes = append(nodes, obj{"id": id, "type": pick(r, []string{"executor", "conditional", "transform", "provider_call"}),
			"position": obj{"x": num(strconv.Itoa(120 * (i + 1))), "y": num(strconv.Itoa(80 * r.IntN(4)))},
			"data":     obj{"providerConfigId": pick(r, g.pools.providerConfigs), "timeoutMs": 5000, "expression": fmt.Sprintf("input.amount > %d", 100*r.IntN(50))}})
		edges = append(edges, obj{"source": prev, "target": id})
		prev = id
	}
	return obj{"name": name, "description": "Managed by the risk team; see runbook RB-" + strconv.Itoa(r.IntN(500)), "nodes": nodes, "edges": edges}
}

func (g *generator) workflowSnapshot(id, name, status string) obj {
	return obj{"workflowId": id, "name": name, "status": status, "version": g.rng.IntN(40) + 1, "nodeCount": g.rng.IntN(8) + 1,
		"updatedBy": pick(g.rng, g.pools.users), "tags": arr{"risk", "payments", "br"}}
}

func (g *generator) executionInput() obj {
	r := g.rng
	return obj{"inputData": obj{
		"amount":   num(fmt.Sprintf("%d.%02d", r.IntN(50000), r.IntN(100))),
		"currency": pick(r, []string{"BRL", "USD", "EUR"}),
		"customer": obj{"id": uuid4(r), "document": "[REDACTED]", "segment": pick(r, []string{"retail", "sme", "corporate"}),
			"address": obj{"city": pick(r, []string{"São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba"}), "country": "BR"}},
		"channel":  pick(r, []string{"app", "web", "pos", "api"}),
		"metadata": obj{"campaign": fmt.Sprintf("cmp-%04d", r.IntN(10000)), "attempt": 1 + r.IntN(3)},
	}, "idempotencyKey": uuid4(r)}
}

func (g *generator) steps() arr {
	r := g.rng
	n := 1 + r.IntN(4)
	out := make(arr, 0, n)
	for i := range n {
		out = append(out, obj{"nodeId": fmt.Sprintf("n%d", i+1), "status": "completed", "durationMs": num(strconv.FormatFloat(math.Round(r.ExpFloat64()*400*1000)/1000, 'f', 3, 64))})
	}
	return out
}

func (g *generator) providerBody(name, prov string) obj {
	r := g.rng
	return obj{"name": name, "providerId": prov, "description": "Configured by " + pick(r, g.pools.users),
		"config": obj{"baseUrl": fmt.Sprintf("https://api.%s.example.com/v%d", prov, 1+r.IntN(3)), "apiKey": "[REDACTED]", "timeoutMs": 3000, "rateLimit": obj{"rps": 10 * (1 + r.IntN(20)), "burst": 50}}}
}
