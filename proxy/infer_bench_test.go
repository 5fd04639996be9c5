package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// BenchmarkInfer measures building the event of an audited workflow update (request and
// response bodies of about 1.5 KiB each): capture rendering, redaction, metadata, canonical text.
func BenchmarkInfer(b *testing.B) { benchInfer(b, false) }

// BenchmarkInferWithIntent adds the intent built before forwarding (as the proxy does: what is
// read from the request is shared with the event): the description cost of write-ahead intents.
func BenchmarkInferWithIntent(b *testing.B) { benchInfer(b, true) }

func benchInfer(b *testing.B, intent bool) {
	h := newHarness(b, http.NotFoundHandler())
	defer h.front.Close()
	body := `{"name":"payout-aml-two-step","description":"payout webhook -> AML screen -> risk score","metadata":{"squad":"payouts"},` +
		`"nodes":[{"id":"hook","type":"trigger","position":{"x":40,"y":120},"data":{"triggerType":"webhook","path":"/p","method":"POST","verify_token":"s3cret"}},` +
		`{"id":"screen","type":"executor","position":{"x":260,"y":120},"data":{"executorId":"tracer.validate-transaction","providerConfigId":"caf35113-eb96-46db-9864-57c07b54371c","inputMapping":{"amount":"workflow.amount","currency":"workflow.currency"}}},` +
		`{"id":"score","type":"executor","position":{"x":480,"y":120},"data":{"executorId":"http","inputMapping":{"decision":"screen.decision"}}}],` +
		`"edges":[{"id":"e1","source":"hook","target":"screen"},{"id":"e2","source":"screen","target":"score"}]}`
	resp := `{"id":"c5160020-5d68-4a05-b984-cef31de6428a","status":"draft","createdAt":"2026-11-23T01:08:04.314Z","updatedAt":"2026-11-23T01:08:05.1Z",` + body[1:]
	m := h.proxy.opts.Rules.Match("PUT", "/v1/workflows/c5160020-5d68-4a05-b984-cef31de6428a")
	hdr := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"bench"}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body) + len(resp)))
	for b.Loop() {
		tee := capture.NewTee(io.NopCloser(strings.NewReader(body)), 8<<20).WithDigestKey(testDigestKey)
		_, _ = io.Copy(io.Discard, tee)
		rt := capture.NewTee(io.NopCloser(strings.NewReader(resp)), 8<<20).WithDigestKey(testDigestKey)
		_, _ = io.Copy(io.Discard, rt)
		x := &exchange{match: m, rule: m.Rule, route: m.Rule.Name, start: time.Now(), mode: "fail_closed", eventID: "e",
			method: "PUT", rawPath: "/v1/workflows/c5160020-5d68-4a05-b984-cef31de6428a", hdr: hdr, reqTee: tee}
		if intent {
			x.reqHeld = []byte(body)
			if in := h.proxy.intentOf(x); len(in.Draft.Context) == 0 {
				b.Fatal("no intent")
			}
			x.intended = true
		}
		d, ok := h.proxy.infer(x, 200, http.Header{"Content-Type": {"application/json"}}, rt.Summary(), nil)
		if !ok || !bytes.Contains(d.Metadata, []byte("payout")) {
			b.Fatal("no event")
		}
	}
}
