package browser_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flowker-audit/flowker-audit/internal/fakeflowker"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// caller is who sends a request: the Flowker API key alone (recorded as the key's fingerprint,
// shown with its configured name), or the key plus a Bearer JWT from the identity provider, which
// the sidecar verifies and records as a user (the fake Flowker checks only the key).
type caller struct {
	actorID string   // the actor id the sidecar must record
	hdr     []string // extra headers, name/value pairs
}

// idpSigningKey is the identity provider's HMAC key, configured in the sidecar.
const idpSigningKey = "identity-provider-signing-key-0001"

// userCaller signs a JWT with the identity provider's key. owner/sub is Flowker's form for
// normal users.
func userCaller(t *testing.T, owner, sub string) caller {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(idpSigningKey)}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": sub, "iss": "https://auth.example.com", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	id := sub
	if owner != "" {
		claims["owner"], claims["type"] = owner, "normal-user"
		id = owner + "/" + sub
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return caller{actorID: id, hdr: []string{"Authorization", "Bearer " + tok}}
}

// driver sends audited requests through the sidecar and counts the events they must produce.
type driver struct {
	t          *testing.T
	env        *testenv.Env
	requests   int // audited requests sent: one event each
	executions int // executions started: one terminal event each (from the sidecar's watcher)
}

// do sends one mutating request as who and checks Flowker's status and that the sidecar
// recorded an event (X-Audit-Id).
func (d *driver) do(who caller, method, path string, body any, want int, hdr ...string) testenv.Response {
	d.t.Helper()
	r := d.env.Flowker(method, path, body, append(slices.Clone(who.hdr), hdr...)...)
	d.requests++
	if r.Status != want {
		d.t.Fatalf("%s %s as %s: status %d, want %d: %s", method, path, who.actorID, r.Status, want, r.Body)
	}
	if r.Header.Get("X-Audit-Id") == "" {
		d.t.Fatalf("%s %s: no X-Audit-Id, so no audit event", method, path)
	}
	return r
}

// id sends a request that creates something and returns the new id (JSON field name).
func (d *driver) id(who caller, method, path string, body any, want int, name string, hdr ...string) string {
	d.t.Helper()
	var m map[string]any
	d.do(who, method, path, body, want, hdr...).JSON(d.t, &m)
	s, _ := m[name].(string)
	if s == "" {
		d.t.Fatalf("%s %s: no %q in the answer", method, path, name)
	}
	return s
}

// start starts an execution (manually or by webhook) that will complete or fail.
func (d *driver) start(who caller, path string, body any, key string) string {
	d.t.Helper()
	id := d.id(who, "POST", path, body, 201, "executionId", "Idempotency-Key", key)
	d.executions++
	return id
}

// nextSecond waits for the wall clock to enter a new second and returns that second. Events
// recorded before it and after it then fall in different seconds, so the page's date filters
// (whole seconds) can split the trail at a known point.
func nextSecond() time.Time {
	next := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(next))
	return next
}

// trail is what fill produced.
type trail struct {
	events       int       // events the trail must hold
	phase2       time.Time // first second of the second phase of traffic
	phase3       time.Time // first second of the third phase
	workflowID   string    // a workflow with a long history (for the resource filter)
	humanActors  []string  // JWT subjects recorded as users
	ciBotActorID string    // fingerprint of the Flowker key, named "ci-bot"
}

func webhookWorkflow(name, description, hook, midazConfig string) map[string]any {
	return map[string]any{
		"name": name, "description": description,
		"nodes": []any{
			map[string]any{"id": "webhook-trigger", "type": "trigger", "name": "Webhook", "position": map[string]int{"x": 250, "y": 0},
				"data": map[string]any{"triggerType": "webhook", "path": hook, "method": "POST"}},
			map[string]any{"id": "get-account", "type": "executor", "name": "Get Account", "position": map[string]int{"x": 250, "y": 150},
				"data": map[string]any{"executorId": "midaz.get-account", "providerConfigId": midazConfig}},
		},
		"edges": []any{map[string]any{"id": "trigger-to-account", "source": "webhook-trigger", "target": "get-account"}},
	}
}

// fill drives the fake Flowker through the sidecar like a small team would over a morning:
// provider configurations and workflows set up, changed and removed, executions started by
// hand and by webhook (some fail inside Flowker), and failed attempts of every kind. Three
// phases are separated by second boundaries (see nextSecond).
func fill(t *testing.T, env *testenv.Env, ciBotActorID string) trail {
	d := &driver{t: t, env: env}
	ci := caller{actorID: ciBotActorID}
	maria := userCaller(t, "lerian", "maria.souza")
	joao := userCaller(t, "lerian", "joao.lima")
	gateway := userCaller(t, "", "payments-gateway")
	run := fmt.Sprint(time.Now().UnixNano() % 1_000_000)
	key := func(s string) string { return s + "-" + run }

	// Phase 1: set-up.
	tracer := d.id(ci, "POST", "/v1/provider-configurations", map[string]any{"name": "Tracer fraud scoring", "providerId": "tracer",
		"description": "Transaction validation against compliance rules",
		"config":      map[string]any{"base_url": "https://tracer.internal.example.com", "api_key": "tr-live-8f2d41c9a0"}}, 201, "id")
	midaz := d.id(ci, "POST", "/v1/provider-configurations", map[string]any{"name": "Midaz ledger (BRL)", "providerId": "midaz",
		"config": map[string]any{"onboarding_base_url": "https://midaz.internal.example.com/onboarding", "transaction_base_url": "https://midaz.internal.example.com/transaction",
			"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "c3e9f1a2-7d64-4b08-a5c1-93f2e6d4b870"}}, 201, "id")
	d.do(maria, "POST", "/v1/provider-configurations", map[string]any{"name": "Stripe payouts", "providerId": "stripe", "config": map[string]any{}}, 404)
	midazUSD := d.id(maria, "POST", "/v1/provider-configurations", map[string]any{"name": "Midaz ledger (USD)", "providerId": "midaz",
		"config": map[string]any{"onboarding_base_url": "https://midaz-us.internal.example.com/onboarding", "transaction_base_url": "https://midaz-us.internal.example.com/transaction",
			"organization_id": "6a1d0c8e-5b7f-4e21-9f3a-0c4d2e8b7a15", "ledger_id": "0b6f2d9e-41c3-4a7e-9d58-2c1e7f3a9b64"}}, 201, "id")
	d.do(maria, "PATCH", "/v1/provider-configurations/"+midazUSD, map[string]any{"name": "Midaz ledger (USD, sandbox)"}, 200)
	d.do(joao, "PATCH", "/v1/provider-configurations/"+tracer, `{"name": "Tracer fraud scor`, 400)

	payouts := d.id(ci, "POST", "/v1/workflows/from-template", map[string]any{"templateId": "tracer-midaz-validation",
		"params": map[string]any{"workflowName": "Card payout validation", "tracerProviderConfigId": tracer, "midazProviderConfigId": midaz,
			"webhookPath": "/payouts/card"}}, 201, "workflowId")
	onboarding := d.id(maria, "POST", "/v1/workflows", webhookWorkflow("Customer onboarding", "Opens the ledger account of a new customer", "/onboarding/kyc", midaz), 201, "workflowId")
	d.do(maria, "POST", "/v1/workflows", map[string]any{"name": "", "nodes": []any{}}, 400)
	d.do(maria, "PUT", "/v1/workflows/"+onboarding, webhookWorkflow("Customer onboarding (KYC)", "Opens the ledger account of a verified customer", "/onboarding/kyc", midaz), 200)
	chargebacks := d.id(joao, "POST", "/v1/workflows", webhookWorkflow("Chargeback review", "Checks the account before a chargeback is accepted", "/chargebacks", midaz), 201, "workflowId")
	sandbox := d.id(joao, "POST", "/v1/workflows/"+chargebacks+"/clone", map[string]any{"name": "Chargeback review (sandbox)"}, 201, "workflowId")
	d.do(ci, "POST", "/v1/workflows/"+payouts+"/activate", nil, 200)
	d.do(maria, "POST", "/v1/workflows/"+onboarding+"/activate", nil, 200)
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/activate", nil, 200)
	d.do(maria, "POST", "/v1/workflows/"+onboarding+"/executions", map[string]any{"inputData": map[string]any{"customerId": "c-1001"}}, 400) // no Idempotency-Key
	d.start(maria, "/v1/workflows/"+onboarding+"/executions", map[string]any{"inputData": map[string]any{"customerId": "c-1001", "document": "123.456.789-09"}}, key("onboard-1001"))
	d.do(joao, "PUT", "/v1/workflows/"+chargebacks, webhookWorkflow("Chargeback review v2", "", "/chargebacks", midaz), 422) // active: cannot modify
	d.do(ci, "PATCH", "/v1/executors/"+fakeflowker.SeededExecutorConfigSandboxID, map[string]any{"name": "sandbox-http-echo",
		"baseUrl": "https://echo.sandbox.example.com", "endpoints": []any{map[string]any{"name": "echo", "path": "/echo", "method": "POST"}},
		"authentication": map[string]any{"type": "api_key", "config": map[string]any{"key": "sbx-4c1e9a7f3b"}}}, 200)

	// Phase 2: traffic, and a provider outage handled by disabling its configuration.
	phase2 := nextSecond()
	for i, amount := range []string{"1250.00", "89.90", "15000.00"} {
		d.start(gateway, "/v1/webhooks/payouts/card", map[string]any{"requestId": fmt.Sprintf("po-%d", 7001+i), "transactionType": "CARD",
			"amount": amount, "currency": "BRL", "account": "acc-4411"}, key(fmt.Sprintf("payout-%d", 7001+i)))
	}
	d.start(gateway, "/v1/webhooks/payouts/card", map[string]any{"requestId": "po-7004", "amount": "420.00", "currency": "BRL", "simulateFailure": true}, key("payout-7004"))
	d.do(gateway, "POST", "/v1/webhooks/payouts/pix", map[string]any{"requestId": "po-7005", "amount": "75.00"}, 404, "Idempotency-Key", key("payout-7005"))
	d.start(ci, "/v1/workflows/"+payouts+"/executions", map[string]any{"inputData": map[string]any{"requestId": "po-7006", "amount": "310.00", "currency": "BRL"}}, key("payout-7006"))
	d.start(joao, "/v1/workflows/"+chargebacks+"/executions", map[string]any{"inputData": map[string]any{"chargebackId": "cb-311", "account": "acc-0913"}}, key("chargeback-311"))
	nextSecond()
	d.do(ci, "POST", "/v1/provider-configurations/"+tracer+"/disable", nil, 200)
	d.start(gateway, "/v1/webhooks/payouts/card", map[string]any{"requestId": "po-7007", "amount": "55.00", "currency": "BRL"}, key("payout-7007")) // fails: provider disabled
	d.do(ci, "POST", "/v1/provider-configurations/"+tracer+"/disable", nil, 422)
	d.do(ci, "POST", "/v1/provider-configurations/"+tracer+"/enable", nil, 200)
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/deactivate", nil, 200)
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/executions", map[string]any{"inputData": map[string]any{"chargebackId": "cb-312"}}, 422, "Idempotency-Key", key("chargeback-312"))
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/draft", nil, 200)
	d.do(joao, "PUT", "/v1/workflows/"+chargebacks, webhookWorkflow("Chargeback review v2", "Checks the account and the dispute window", "/chargebacks", midaz), 200)
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/activate", nil, 200)
	d.start(gateway, "/v1/webhooks/chargebacks", map[string]any{"chargebackId": "cb-313", "account": "acc-2207"}, key("chargeback-313"))
	d.do(maria, "DELETE", "/v1/workflows/"+onboarding, nil, 422) // active: cannot delete
	d.do(maria, "DELETE", "/v1/workflows/"+sandbox, nil, 204)
	d.do(maria, "DELETE", "/v1/workflows/"+sandbox, nil, 404)
	d.do(ci, "DELETE", "/v1/provider-configurations/"+midazUSD, nil, 204)
	d.start(joao, "/v1/workflows/"+payouts+"/executions", map[string]any{"inputData": map[string]any{"requestId": "po-7008", "amount": "990.00", "simulateFailure": true}}, key("payout-7008"))

	// Phase 3: the newest events (the page's first screen), in steps a second or more apart so
	// the screenshot shows them at different times (the sidecar stamps events with its own clock).
	phase3 := nextSecond()
	refunds := d.id(maria, "POST", "/v1/workflows", map[string]any{"name": "Refund approval", "description": "Draft: trigger not decided yet", "nodes": []any{}}, 201, "workflowId")
	d.do(maria, "POST", "/v1/workflows/"+refunds+"/activate", nil, 422) // no nodes
	d.do(maria, "PUT", "/v1/workflows/"+refunds, webhookWorkflow("Refund approval", "Checks the account before a refund", "/refunds", midaz), 200)
	d.do(maria, "POST", "/v1/workflows/"+refunds+"/activate", nil, 200)
	d.start(gateway, "/v1/webhooks/refunds", map[string]any{"refundId": "rf-5120", "account": "acc-4411", "amount": "89.90"}, key("refund-5120"))
	nextSecond()
	d.do(joao, "POST", "/v1/workflows/"+chargebacks+"/clone", map[string]any{"name": "Chargeback review (EU)"}, 201)
	d.do(ci, "PATCH", "/v1/provider-configurations/"+tracer, map[string]any{"name": "Tracer fraud scoring (v2 rules)"}, 200)
	d.do(ci, "DELETE", "/v1/executors/"+fakeflowker.SeededExecutorConfigLedgerID, nil, 422)
	nextSecond()
	for i, amount := range []string{"230.00", "18.75"} {
		d.start(gateway, "/v1/webhooks/payouts/card", map[string]any{"requestId": fmt.Sprintf("po-%d", 7009+i), "amount": amount, "currency": "BRL"}, key(fmt.Sprintf("payout-%d", 7009+i)))
	}
	d.start(gateway, "/v1/webhooks/chargebacks", map[string]any{"chargebackId": "cb-314", "simulateFailure": true}, key("chargeback-314"))
	nextSecond()
	d.do(joao, "POST", "/v1/workflows/"+payouts+"/deactivate", nil, 200)
	d.do(gateway, "POST", "/v1/webhooks/payouts/card", map[string]any{"requestId": "po-7011", "amount": "42.00"}, 404, "Idempotency-Key", key("payout-7011")) // no longer registered
	// An inactive workflow must go back to draft before it can be activated again.
	d.do(joao, "POST", "/v1/workflows/"+payouts+"/activate", nil, 422)
	d.do(joao, "POST", "/v1/workflows/"+payouts+"/draft", nil, 200)
	d.do(joao, "POST", "/v1/workflows/"+payouts+"/activate", nil, 200)
	nextSecond()
	d.start(ci, "/v1/workflows/"+onboarding+"/executions", map[string]any{"inputData": map[string]any{"customerId": "c-1002"}}, key("onboard-1002"))
	d.do(maria, "POST", "/v1/provider-configurations", map[string]any{"name": "Tracer fraud scoring", "providerId": "tracer", "config": map[string]any{"base_url": "not a url"}}, 500) // schema failure: Flowker answers 500 FLK-9999

	return trail{
		events: d.requests + d.executions, phase2: phase2, phase3: phase3, workflowID: chargebacks,
		humanActors: []string{maria.actorID, joao.actorID, gateway.actorID}, ciBotActorID: ciBotActorID,
	}
}
