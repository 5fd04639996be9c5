package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/rules"
)

// infer builds the event draft of an audited exchange. record is false when nothing must be
// recorded (an idempotent execution replay). status is the upstream status, or the gateway
// status when upstreamErr is set.
//
// This runs on the request path of every audited request, so it works on the captured bytes
// directly: values are looked up with capture.Lookup, bodies rendered by the single-pass
// redacting renderer, and the context written as JSON text and canonicalised once.
func (p *Proxy) infer(x *exchange, status int, respHeader http.Header, resp capture.Summary, upstreamErr error) (journal.Draft, bool) {
	return p.describe(x, status, respHeader, resp, upstreamErr, false)
}

// pendingDraft is the event of an exchange as far as it is known before forwarding (for its
// intent): no status, no response, no result.
func (p *Proxy) pendingDraft(x *exchange) journal.Draft {
	d, _ := p.describe(x, 0, nil, capture.Summary{}, nil, true)
	return d
}

func (p *Proxy) describe(x *exchange, status int, respHeader http.Header, resp capture.Summary, upstreamErr error, pending bool) (journal.Draft, bool) {
	rule := x.rule
	req := x.requestSummary()
	src := &sourceCtx{match: x.match, reqSum: req, respSum: resp, respHeader: respHeader}
	success := upstreamErr == nil && status >= 200 && status < 300

	d := journal.Draft{
		EventID: x.eventID, EventType: rule.EventType, Action: rule.Action, ResourceType: rule.ResourceType,
		Actor: x.id.Actor, Result: chain.ResultFailed,
	}
	switch {
	case pending:
		d.Result = ""
	case success:
		d.Result = chain.ResultSuccess
	}
	if x.intended && !pending {
		d.Resolves = x.eventID
	}
	d.ResourceID = rules.CanonicalID(src.first(rule.ResourceID))
	meta := newObj(256)
	workflowID := ""
	for _, f := range rule.Metadata {
		v := src.first(f.Sources)
		if v == "" {
			continue
		}
		if f.Key == "workflow.id" || strings.HasSuffix(f.Key, ".id") || strings.HasSuffix(f.Key, "_from") {
			v = rules.CanonicalID(v)
		}
		if f.Key == "workflow.id" {
			workflowID = v
		}
		meta.str(f.Key, capture.Sanitize(v))
	}
	if rule.Kind == config.KindExecutionStart && success && !pending {
		if status == http.StatusOK {
			// Flowker answers 200 only when replaying a terminal execution: nothing new happened.
			p.m.Replays.Inc()
			return d, false
		}
		if d.ResourceID != "" {
			d.Once = "exec-start:" + d.ResourceID
			d.Watch = &journal.Watch{ExecutionID: d.ResourceID, WorkflowID: workflowID, Since: p.opts.Now().UTC()}
		}
	}

	// Context: what the sidecar saw.
	ctx := newObj(2048 + len(req.Captured) + len(resp.Captured))
	if d.ResourceID == "" && len(rule.ResourceID) > 0 && !pending {
		if success {
			ctx.str("resourceIdUnavailable", "the response did not carry the resource id ("+sourceList(rule.ResourceID)+")")
		} else {
			ctx.str("resourceIdUnavailable", "the request failed, so no resource was created or identified")
		}
	}
	ctx.str("method", capture.Sanitize(x.method))
	ctx.str("path", capture.Sanitize(x.rawPath))
	ctx.str("route", rule.Method+" "+rule.Path)
	ctx.str("rule", rule.Name)
	ctx.str("requestId", x.eventID)
	ctx.str("failMode", x.mode)
	if q := p.redactor(rule).Query(x.query); q != nil {
		if b, err := json.Marshal(q); err == nil {
			ctx.raw("query", b)
		}
	}
	if status != 0 {
		ctx.int("status", int64(status))
	}
	var failure []byte // Flowker's error body
	if !success {
		failure = src.respBody()
	}
	if code := errorCode(failure); code != "" {
		ctx.str("errorCode", code)
		if msg, ok := capture.Lookup(failure, []string{"message"}); ok && msg != "" {
			ctx.str("errorMessage", clip(msg, 1024))
		}
	}
	if upstreamErr != nil {
		ctx.str("upstreamError", clip(capture.Sanitize(upstreamErr.Error()), 512))
	}
	if !pending {
		dur := newObj(64)
		dur.num("total", ms(p.opts.Now().Sub(x.start)))
		if !x.upstream.IsZero() {
			dur.num("upstream", ms(x.upstream.Sub(x.start)))
		}
		ctx.raw("durationMs", dur.bytes())
	}
	if ua := x.hdr.Get("User-Agent"); ua != "" {
		ctx.str("userAgent", clip(capture.Sanitize(ua), 512))
	}
	if id := x.hdr.Get("X-Request-Id"); id != "" {
		ctx.str("clientRequestId", clip(capture.Sanitize(id), 256))
	}
	if k := x.hdr.Get("Idempotency-Key"); k != "" {
		ctx.str("idempotencyKey", clip(capture.Sanitize(k), 256))
	}
	auth := newObj(128)
	auth.str("method", x.id.Method)
	auth.bool("verified", x.id.Verified)
	if x.id.Name != "" {
		auth.str("name", capture.Sanitize(x.id.Name))
	}
	if x.id.Detail != "" {
		auth.str("detail", capture.Sanitize(x.id.Detail))
	}
	ctx.raw("auth", auth.bytes())
	if x.id.Peer != x.id.Actor.IPAddress || len(x.id.Forwarded) > 0 {
		ctx.str("peer", x.id.Peer)
		if len(x.id.Forwarded) > 0 {
			fwd := make([]string, len(x.id.Forwarded))
			for i, h := range x.id.Forwarded {
				fwd[i] = capture.Sanitize(h)
			}
			if b, err := json.Marshal(fwd); err == nil {
				ctx.raw("forwardedFor", b)
			}
		}
	}
	// The request's part is the same for the intent and the event when the whole body was held
	// before forwarding: rendered once.
	reqCtx := x.reqCtx
	if reqCtx == nil {
		reqCtx = p.bodyContext(rule, x.hdr.Get("Content-Type"), req)
		if pending && req.Complete && !req.Truncated && req.Err == nil {
			x.reqCtx = reqCtx
		}
	}
	ctx.raw("request", reqCtx)
	if upstreamErr == nil && !pending {
		ctx.raw("response", p.bodyContext(rule, respHeader.Get("Content-Type"), resp))
	}

	if pending {
		// An intent's context and metadata are kept as written (valid JSON, not canonical):
		// the rare event rebuilt from an intent is canonicalised then.
		d.Context, d.Metadata = ctx.bytes(), meta.bytes()
		return d, true
	}
	c := p.canon.Get().(*jsonb.Canonicalizer)
	defer p.canon.Put(c)
	d.Context = canonical(c, ctx.bytes())
	d.Metadata = canonical(c, meta.bytes())
	return d, true
}

// complete returns the captured body when it is the whole body and valid JSON, else nil: a
// prefix or a malformed body cannot be trusted for ids or names.
func complete(s capture.Summary) []byte {
	if s.Truncated || !s.Complete || len(s.Captured) == 0 || !json.Valid(s.Captured) {
		return nil
	}
	return s.Captured
}

// bodyContext describes a body: size, digest, content type and a redacted, capped rendering.
func (p *Proxy) bodyContext(rule *rules.Rule, contentType string, s capture.Summary) []byte {
	o := newObj(256 + min(len(s.Captured), p.opts.MaxBodyBytes))
	o.int("bytes", s.Bytes)
	if contentType != "" {
		o.str("contentType", clip(capture.Sanitize(contentType), 128))
	}
	if s.Bytes == 0 {
		return o.bytes()
	}
	if s.SHA256 != "" {
		o.str("sha256", s.SHA256)
	} else {
		o.bool("complete", false) // not read to the end (upstream answered early, or the body broke)
	}
	if s.Err != nil {
		o.str("readError", clip(capture.Sanitize(s.Err.Error()), 256))
	}
	looksJSON := capture.LooksJSON(contentType, s.Captured)
	if !looksJSON {
		o.raw("body", []byte("null"))
		o.str("bodyOmitted", "not JSON: only its size and digest are kept")
		return o.bytes()
	}
	if !p.opts.CaptureBodies {
		return o.bytes()
	}
	r, err := p.redactor(rule).Render(s.Captured, s.Complete && !s.Truncated, p.opts.MaxBodyBytes)
	if err != nil {
		o.str("bodyOmitted", "not valid JSON: only its size and digest are kept")
		return o.bytes()
	}
	o.raw("body", r.JSON)
	if r.Truncated || s.Truncated {
		o.bool("truncated", true)
	}
	if r.Invalid {
		o.bool("invalidJson", true)
	}
	return o.bytes()
}

func (p *Proxy) redactor(r *rules.Rule) *capture.Redactor {
	if red, ok := p.redactors[r]; ok {
		return red
	}
	return p.opts.Redactor.With(r.Redact)
}

// obj writes a JSON object member by member (keys need not be sorted: the text is canonicalised).
type obj struct {
	b []byte
	n int
}

func newObj(capacity int) *obj { return &obj{b: append(make([]byte, 0, capacity), '{')} }

func (o *obj) key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = jsonb.AppendString(o.b, k)
	o.b = append(o.b, ':')
}

// str adds a string member; v must be valid UTF-8 without U+0000 (use capture.Sanitize).
func (o *obj) str(k, v string) { o.key(k); o.b = jsonb.AppendString(o.b, v) }

func (o *obj) raw(k string, v []byte) { o.key(k); o.b = append(o.b, v...) }

func (o *obj) int(k string, v int64) { o.key(k); o.b = strconv.AppendInt(o.b, v, 10) }

func (o *obj) num(k string, v string) { o.key(k); o.b = append(o.b, v...) }

func (o *obj) bool(k string, v bool) { o.key(k); o.b = strconv.AppendBool(o.b, v) }

func (o *obj) bytes() []byte { return append(o.b, '}') }

// ms renders a duration in milliseconds with microsecond precision.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

func sourceList(srcs []rules.Source) string {
	parts := make([]string, len(srcs))
	for i, s := range srcs {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}

// canonical renders JSON text built here as canonical jsonb text. The inputs are sanitised
// strings, numbers and redacted renderings, so an error is a bug; it is reported inside the event
// rather than dropping the event.
func canonical(c *jsonb.Canonicalizer, raw []byte) []byte {
	out, err := c.AppendCanonical(nil, raw)
	if err == nil {
		return out
	}
	fb := newObj(128)
	fb.str("encodingError", capture.Sanitize(err.Error()))
	out, _ = c.AppendCanonical(nil, fb.bytes())
	return out
}

// errorCode extracts Flowker's error code from an error body {code, title, message} (code is
// "FLK-xxxx", "UNAUTHORIZED", or a number for framework errors).
func errorCode(body []byte) string {
	code, _ := capture.Lookup(body, []string{"code"})
	return clip(capture.Sanitize(code), 64)
}

// sourceCtx is where a rule's values come from. A body is checked (complete, valid JSON) only
// when a value is first looked up in it: most rules read the path alone.
type sourceCtx struct {
	match             *rules.Match
	reqSum, respSum   capture.Summary
	req, resp         []byte // complete JSON bodies, or nil, once checked
	reqDone, respDone bool
	respHeader        http.Header
}

func (s *sourceCtx) reqBody() []byte {
	if !s.reqDone {
		s.req, s.reqDone = complete(s.reqSum), true
	}
	return s.req
}

func (s *sourceCtx) respBody() []byte {
	if !s.respDone {
		s.resp, s.respDone = complete(s.respSum), true
	}
	return s.resp
}

// first returns the first non-empty value of srcs.
func (s *sourceCtx) first(srcs []rules.Source) string {
	for _, src := range srcs {
		var v string
		switch src.Kind {
		case rules.FromPath:
			if s.match != nil {
				v = s.match.Param(src.Name)
			}
		case rules.FromRequest:
			if body := s.reqBody(); body != nil {
				v, _ = capture.Lookup(body, src.Path)
			}
		case rules.FromResponse:
			if body := s.respBody(); body != nil {
				v, _ = capture.Lookup(body, src.Path)
			}
		case rules.FromResponseHeader:
			if s.respHeader != nil {
				v = s.respHeader.Get(src.Name)
			}
		case rules.FromLiteral:
			v = src.Name
		}
		if v = strings.TrimSpace(v); v != "" {
			return clip(v, 1024)
		}
	}
	return ""
}
