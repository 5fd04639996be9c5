package clickhouse

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
)

// Proxy-shaped contexts for the cluster benchmark (FLOWKER_AUDIT_BENCH_CLUSTER_CONTEXT=proxy, its
// default). sinktest's generator renders 0.5-2 KiB contexts with whole workflow graphs, step
// lists and execution inputs in every body; the 100 M data set then needs ~670 bytes per event
// and replica on disk. An event of the sidecar (proxy/infer.go; proxy/testdata/golden) carries
// the request line, route and rule, the request id, status, durations, user agent, the caller's
// authentication, and the request and response bodies as captured: for most mutations an id,
// a name and a status, plus each body's size and keyed digest. proxyContext renders that shape
// from the event's own fields: the ids, the digests and the durations differ per event (they do
// in real traffic too), the rest repeats.

// benchContext names the context shape of the cluster benchmark's events.
type benchContext string

const (
	contextProxy benchContext = "proxy" // proxyContext: the sidecar's event shape with small bodies
	contextRich  benchContext = "rich"  // sinktest.GenerateChain's own 0.5-2 KiB contexts
)

// withProxyContexts replaces the contexts of batch (one chain, in order) by proxy-shaped ones and
// re-seals the chain; prev is the previous batch's last event (already final), or nil.
func withProxyContexts(batch []chain.Event, prev *chain.Event) {
	c := &jsonb.Canonicalizer{}
	var buf []byte
	for j := range batch {
		e := &batch[j]
		buf = proxyContext(buf[:0], e)
		out, err := c.AppendCanonical(nil, buf)
		if err != nil {
			panic(fmt.Sprintf("proxy context of %s/%d: %v\n%s", e.ChainID, e.Sequence, err, buf))
		}
		e.Context = out
		switch {
		case j > 0:
			e.PreviousHash = batch[j-1].Hash
		case prev != nil:
			e.PreviousHash = prev.Hash
		}
		e.Seal()
	}
}

// proxyContext appends the JSON context the sidecar would record for e. Its variable parts are
// derived from the event id, so the same event always gets the same context.
func proxyContext(dst []byte, e *chain.Event) []byte {
	seed := sha256.Sum256([]byte(e.EventID))
	n := binary.BigEndian.Uint64(seed[:8])
	method, route := "POST", "/v1/workflows"
	path := route
	status := 200
	var reqBody, respBody string
	name := benchNames[n%uint64(len(benchNames))]
	switch e.ResourceType {
	case chain.ResourceWorkflow:
		switch e.Action {
		case chain.ActionCreate:
			status = 201
			reqBody = fmt.Sprintf(`{"name":%q,"description":"managed by the risk team","nodes":"[2 items]"}`, name)
			respBody = fmt.Sprintf(`{"workflowId":%q,"name":%q,"status":"draft"}`, e.ResourceID, name)
		case chain.ActionUpdate:
			method, route, path = "PUT", "/v1/workflows/{id}", "/v1/workflows/"+e.ResourceID
			reqBody = fmt.Sprintf(`{"name":%q,"nodes":"[3 items]"}`, name)
			respBody = fmt.Sprintf(`{"workflowId":%q,"name":%q,"status":"draft"}`, e.ResourceID, name)
		case chain.ActionDelete:
			method, route, path, status = "DELETE", "/v1/workflows/{id}", "/v1/workflows/"+e.ResourceID, 204
		default:
			verb := strings.ToLower(e.Action)
			route, path = "/v1/workflows/{id}/"+verb, "/v1/workflows/"+e.ResourceID+"/"+verb
			respBody = fmt.Sprintf(`{"workflowId":%q,"name":%q,"status":"active"}`, e.ResourceID, name)
		}
	case chain.ResourceExecution:
		if e.EventType == chain.ExecutionStarted {
			status = 202
			route, path = "/v1/workflows/{workflowId}/executions", "/v1/workflows/"+e.ResourceID+"/executions"
			reqBody = fmt.Sprintf(`{"inputData":{"amount":%d,"currency":"BRL","reference":"PAYOUT-%04d"}}`, n%50000, n%10000)
			respBody = fmt.Sprintf(`{"executionId":%q,"status":"running"}`, e.ResourceID)
		} else {
			method, route, path = "GET", "/v1/executions/{id}", "/v1/executions/"+e.ResourceID
			respBody = fmt.Sprintf(`{"executionId":%q,"status":"completed","outputData":{"decision":"approved"}}`, e.ResourceID)
		}
	case chain.ResourceProviderConfig, chain.ResourceExecutorConfig:
		base := "/v1/provider-configurations"
		if e.ResourceType == chain.ResourceExecutorConfig {
			base = "/v1/executors"
		}
		switch e.Action {
		case chain.ActionCreate:
			route, path, status = base, base, 201
		case chain.ActionDelete:
			method, route, path, status = "DELETE", base+"/{id}", base+"/"+e.ResourceID, 204
		default:
			method, route, path = "PATCH", base+"/{id}", base+"/"+e.ResourceID
		}
		reqBody = fmt.Sprintf(`{"name":%q,"config":{"apiKey":"[REDACTED]","timeoutMs":3000}}`, name)
		respBody = fmt.Sprintf(`{"id":%q,"name":%q,"status":"active"}`, e.ResourceID, name)
	default:
		method, route, path = "PATCH", "", fmt.Sprintf("/v1/imports/%d", n%1000)
		respBody = `{"ok":true}`
	}
	if e.Result == chain.ResultFailed {
		status = 422
		respBody = `{"code":"FLK-0105","title":"Unprocessable Entity","message":"workflow graph has no trigger node"}`
	}
	body := func(key, b string, salt byte) string {
		if b == "" {
			return fmt.Sprintf(`%q:{"bytes":0}`, key)
		}
		sum := sha256.Sum256(append([]byte{salt}, seed[:]...))
		return fmt.Sprintf(`%q:{"body":%s,"bytes":%d,"contentType":"application/json","hmacSha256":%q}`, key, b, len(b), hex.EncodeToString(sum[:]))
	}
	authName := "payments-backend"
	if e.Actor.Type == chain.ActorUser {
		authName = e.Actor.ID
	}
	return fmt.Appendf(dst, `{"method":%q,"path":%q,"route":%q,"rule":%q,"requestId":%q,"failMode":"fail_closed","status":%d,`+
		`"durationMs":{"total":%d.%03d,"upstream":%d.%03d},"userAgent":%q,"auth":{"method":%q,"name":%q,"verified":true},%s,%s}`,
		method, path, method+" "+route, strings.ToLower(e.EventType), e.EventID, status,
		2+n%40, n%1000, 1+n%38, (n>>10)%1000, benchAgents[(n>>20)%uint64(len(benchAgents))], e.Actor.Type, authName,
		body("request", reqBody, 1), body("response", respBody, 2))
}

var benchNames = []string{"Payments KYC", "Onboarding PF", "Análise de crédito", "Chargeback dispute", "Pix limits",
	"AML screening", "Loan origination", "Refund approval", "tracer prod", "serasa sandbox"}

var benchAgents = []string{"flowker-cli/1.4.2 (linux; amd64)", "python-requests/2.32.3", "Go-http-client/1.1", "okhttp/4.12.0"}
