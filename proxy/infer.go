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
// directly: values are looked up with capture.Decode, bodies rendered by the single-pass
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
	src := &sourceCtx{match: x.match, reqSum: req, respSum: resp, respHeader: respHeader, reqHeader: x.hdr, maxDecoded: p.opts.MaxHoldBytes,
		memo: x.reqMemo}
	if pending && src.memo == nil && req.Complete && !req.Truncated && req.Err == nil {
		// The request body is final: what is read from it now (for the intent) is read again
		// for the event, so it is kept.
		src.memo = &reqMemo{}
		x.reqMemo = src.memo
	}
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
		meta.str(f.Key, capture.Text(capture.Sanitize(v)))
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
	p.commonCtx(ctx, x, src, pending)
	if status != 0 {
		ctx.int("status", int64(status))
	}
	var failure []byte // Flowker's error body
	if !success {
		failure = src.respBody()
	}
	if code := errorCode(failure); code != "" {
		ctx.str("errorCode", code)
		if msg := capture.Decode(failure, capture.Segs("message")); msg.Text != "" {
			ctx.str("errorMessage", clip(capture.Text(capture.Sanitize(msg.Text)), 1024))
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
	if src.unread != "" {
		ctx.str("valuesUnread", src.unread)
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

// commonCtx writes the context members that the intent and the event share (the request as the
// sidecar received it and who sent it). They are written once: when the intent is described with
// the whole request body at hand, the members are kept for the event.
func (p *Proxy) commonCtx(ctx *obj, x *exchange, src *sourceCtx, pending bool) {
	if x.ctxCommon != nil {
		ctx.members(x.ctxCommon, x.ctxCommonN)
		return
	}
	c := newObj(512)
	c.str("method", capture.Sanitize(x.method))
	c.str("path", capture.Text(capture.Sanitize(x.rawPath)))
	c.str("route", x.rule.Method+" "+x.rule.Path)
	c.str("rule", x.rule.Name)
	c.str("requestId", x.eventID)
	c.str("failMode", x.mode)
	if q := p.redactor(x.rule).Query(x.query); q != nil {
		if b, err := json.Marshal(q); err == nil {
			c.raw("query", b)
		}
	}
	if ua := x.hdr.Get("User-Agent"); ua != "" {
		c.str("userAgent", clip(capture.Text(capture.Sanitize(ua)), 512))
	}
	if id := x.hdr.Get("X-Request-Id"); id != "" {
		c.str("clientRequestId", clip(capture.Text(capture.Sanitize(id)), 256))
	}
	if k := x.hdr.Get("Idempotency-Key"); k != "" {
		c.str("idempotencyKey", clip(capture.Text(capture.Sanitize(k)), 256))
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
	c.raw("auth", auth.bytes())
	if x.id.Peer != x.id.Actor.IPAddress || len(x.id.Forwarded) > 0 {
		c.str("peer", x.id.Peer)
		if len(x.id.Forwarded) > 0 {
			fwd := make([]string, len(x.id.Forwarded))
			for i, h := range x.id.Forwarded {
				fwd[i] = capture.Sanitize(h)
			}
			if b, err := json.Marshal(fwd); err == nil {
				c.raw("forwardedFor", b)
			}
		}
	}
	if amb := src.ambiguousKeys(); len(amb) > 0 {
		// The body repeats a key (exactly or in another case): Flowker applied the last one.
		if b, err := json.Marshal(amb); err == nil {
			c.raw("ambiguousKeys", b)
		}
	}
	members := c.b[1:] // without the opening brace
	if pending && src.memo != nil {
		x.ctxCommon, x.ctxCommonN = members, c.n
	}
	ctx.members(members, c.n)
}

// ambiguousKeys lists the keys a request body repeats exactly or under case folding.
func ambiguousKeys(h http.Header, s capture.Summary) []string {
	if len(s.Captured) == 0 {
		return nil
	}
	const limit = 16
	var out []string
	switch capture.FiberBodyKind(capture.FiberContentType(h)) {
	case capture.BodyForm:
		out = capture.FormAmbiguousKeys(s.Captured, limit)
	case capture.BodyJSON:
		out = capture.AmbiguousKeys(s.Captured, limit)
	}
	for i, k := range out {
		out[i] = clip(capture.Sanitize(k), 256)
	}
	return out
}

// complete returns the captured body when it is the whole body and valid JSON, else nil: a
// prefix or a malformed body cannot be trusted for ids or names.
func complete(s capture.Summary) []byte {
	if s.Truncated || !s.Complete || len(s.Captured) == 0 || !json.Valid(s.Captured) {
		return nil
	}
	return s.Captured
}

// bodyContext describes a body: size, keyed digest, content type and a redacted, capped
// rendering.
//
// The digest is HMAC-SHA-256 under the deployment's digest key, never a plain hash: a plain hash
// of a body whose secrets were redacted lets anyone who can read the trail confirm guesses of them.
// For the same reason, when a body's content is not wholly shown (a value was redacted, or the
// body was not rendered) its size is given rounded up to a multiple of sizeGrain
// ("bytesAtMost"), not exactly: the exact size minus the rendered rest is the secret's length.
func (p *Proxy) bodyContext(rule *rules.Rule, contentType string, s capture.Summary) []byte {
	o := newObj(256 + min(len(s.Captured), p.opts.MaxBodyBytes))
	if contentType != "" {
		o.str("contentType", clip(capture.Sanitize(contentType), 128))
	}
	if s.Bytes == 0 && !s.Truncated {
		o.int("bytes", 0)
		return o.bytes()
	}
	hidden := false // part of the content is not shown
	truncated := s.Truncated
	var rendered []byte
	var notes func()
	switch {
	case !capture.LooksJSON(contentType, s.Captured):
		hidden = true
		notes = func() {
			o.raw("body", []byte("null"))
			o.str("bodyOmitted", "not JSON: only its size and keyed digest are kept")
		}
	case !p.opts.CaptureBodies:
		hidden = true
	default:
		r, err := p.redactor(rule).Render(s.Captured, s.Complete && !s.Truncated, p.opts.MaxBodyBytes)
		if err != nil {
			hidden = true
			notes = func() { o.str("bodyOmitted", "not valid JSON: only its size and keyed digest are kept") }
			break
		}
		hidden = r.Redacted
		truncated = truncated || r.Truncated
		rendered = r.JSON
		notes = func() {
			o.raw("body", rendered)
			if r.Invalid {
				o.bool("invalidJson", true)
			}
		}
	}
	if hidden {
		o.int("bytesAtMost", roundUp(s.Bytes, sizeGrain))
	} else {
		o.int("bytes", s.Bytes)
	}
	if s.Digest != "" {
		o.str("hmacSha256", s.Digest)
	} else if !s.Complete {
		o.bool("complete", false) // not read to the end (upstream answered early, or the body broke)
	}
	if truncated {
		o.bool("truncated", true)
	}
	if s.Err != nil {
		o.str("readError", clip(capture.Sanitize(s.Err.Error()), 256))
	}
	if notes != nil {
		notes()
	}
	return o.bytes()
}

// sizeGrain is the granularity of sizes given for bodies whose content is partly hidden.
const sizeGrain = 64

func roundUp(n, grain int64) int64 {
	if n <= 0 {
		return grain
	}
	return (n + grain - 1) / grain * grain
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

// members appends n members written by another obj (its text without the braces).
func (o *obj) members(b []byte, n int) {
	if n == 0 {
		return
	}
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, b...)
	o.n += n
}

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
	return clip(capture.Sanitize(capture.Decode(body, capture.Segs("code")).Text), 64)
}

// sourceCtx is where a rule's values come from. A body is checked (complete, valid JSON) only
// when a value is first looked up in it: most rules read the path alone.
//
// Request values are read the way Flowker reads them: Fiber's BodyParser picks the decoder from
// the Content-Type (the last such header), undoes the Content-Encoding, and JSON goes through
// encoding/json into Flowker's structs (the last of duplicate keys wins, field names match
// case-insensitively). Response values come from Flowker's own encoding/json output; when the
// capture of the response was cut, they are read from the captured prefix (Flowker writes ids
// and names first).
type sourceCtx struct {
	match             *rules.Match
	reqSum, respSum   capture.Summary
	reqHeader         http.Header
	req, resp         []byte // complete JSON bodies, or nil, once checked
	reqKind           capture.BodyKind
	reqDone, respDone bool
	respHeader        http.Header
	maxDecoded        int
	unread            string   // why request values could not be read, when they were wanted
	memo              *reqMemo // nil: the request body may still change (read on after forwarding)
}

// reqMemo is what was read from a request body held whole before forwarding: the intent's
// description reads it first, the event's reuses it (the body is the same bytes).
type reqMemo struct {
	bodyDone   bool
	body       []byte
	kind       capture.BodyKind
	bodyUnread string
	vals       []memoValue
	amb        []string
	ambDone    bool
}

type memoValue struct {
	src    *rules.Source
	v      capture.Value
	unread string // what the lookup set sourceCtx.unread to ("" for unchanged)
}

// ambiguousKeys lists the keys the request body repeats (read once per request body).
func (s *sourceCtx) ambiguousKeys() []string {
	if s.memo == nil {
		return ambiguousKeys(s.reqHeader, s.reqSum)
	}
	if !s.memo.ambDone {
		s.memo.amb, s.memo.ambDone = ambiguousKeys(s.reqHeader, s.reqSum), true
	}
	return s.memo.amb
}

func (s *sourceCtx) reqBody() []byte {
	if s.reqDone {
		return s.req
	}
	s.reqDone = true
	if m := s.memo; m != nil {
		if !m.bodyDone {
			before := s.unread
			s.unread = ""
			m.body = s.readReqBody()
			m.kind, m.bodyDone, m.bodyUnread = s.reqKind, true, s.unread
			if s.unread == "" {
				s.unread = before
			}
		}
		s.req, s.reqKind = m.body, m.kind
		if m.bodyUnread != "" {
			s.unread = m.bodyUnread
		}
		return s.req
	}
	return s.readReqBody()
}

// reqValueOf reads the request value src names, once per request body when it is memoised.
func (s *sourceCtx) reqValueOf(src *rules.Source) capture.Value {
	if s.memo == nil {
		return s.reqValue(src.Path)
	}
	for _, mv := range s.memo.vals {
		if mv.src == src {
			s.reqBody() // its notes, as a lookup would leave them
			if mv.unread != "" {
				s.unread = mv.unread
			}
			return mv.v
		}
	}
	before := s.unread
	s.unread = ""
	v := s.reqValue(src.Path)
	mv := memoValue{src: src, v: v, unread: s.unread} // the note this lookup leaves
	if s.unread == "" {
		s.unread = before
	}
	s.memo.vals = append(s.memo.vals, mv)
	return v
}

func (s *sourceCtx) readReqBody() []byte {
	ct := capture.FiberContentType(s.reqHeader)
	s.reqKind = capture.FiberBodyKind(ct)
	switch {
	case s.reqSum.Bytes == 0:
		return nil
	case s.reqSum.Truncated || !s.reqSum.Complete:
		s.unread = "the request body was not captured whole"
		return nil
	}
	switch s.reqKind {
	case capture.BodyJSON:
		b, err := capture.FiberJSONBody(s.reqSum.Captured, s.reqHeader, s.maxDecoded)
		if err != nil {
			s.unread = "the request's Content-Encoding could not be undone within capture.max_hold_bytes"
			return nil
		}
		if len(b) > 0 && json.Valid(b) {
			s.req = b
		}
	case capture.BodyForm:
		s.req = s.reqSum.Captured
	case capture.BodyMultipart, capture.BodyXML:
		s.unread = "Flowker binds " + s.reqKind.String() + " bodies; the sidecar does not read them"
	}
	return s.req
}

// reqValue reads a request value as Flowker's decoder stores it.
func (s *sourceCtx) reqValue(path []capture.Seg) capture.Value {
	body := s.reqBody()
	if body == nil {
		return capture.Value{}
	}
	if s.reqKind == capture.BodyForm {
		if len(path) != 1 {
			s.unread = "nested values of form bodies are not read"
			return capture.Value{}
		}
		v, ambiguous := capture.FormValue(body, capture.FiberContentType(s.reqHeader), path[0].Name)
		if ambiguous {
			s.unread = "the form body spells " + path[0].Name + " in several ways; which one Flowker applied depends on its map order"
		}
		return v
	}
	return capture.Decode(body, path)
}

func (s *sourceCtx) respBody() []byte {
	if !s.respDone {
		s.resp, s.respDone = complete(s.respSum), true
	}
	return s.resp
}

// respValue reads a response value, from the captured prefix when the capture was cut.
func (s *sourceCtx) respValue(path []capture.Seg) capture.Value {
	if body := s.respBody(); body != nil {
		return capture.Decode(body, path)
	}
	if len(s.respSum.Captured) > 0 && s.respSum.Truncated {
		return capture.DecodePrefix(s.respSum.Captured, path)
	}
	return capture.Value{}
}

// first returns the first non-empty value of srcs, exactly as found (never trimmed).
func (s *sourceCtx) first(srcs []rules.Source) string {
	for i := range srcs {
		src := &srcs[i]
		var v string
		switch src.Kind {
		case rules.FromPath:
			if s.match != nil {
				v = s.match.Param(src.Name)
			}
		case rules.FromRequest:
			v = s.reqValueOf(src).Text
		case rules.FromResponse:
			v = s.respValue(src.Path).Text
		case rules.FromResponseHeader:
			if s.respHeader != nil {
				v = s.respHeader.Get(src.Name)
			}
		case rules.FromLiteral:
			v = src.Name
		}
		if v != "" {
			return clip(v, 1024)
		}
	}
	return ""
}
