package proxy

import (
	"bytes"
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
func (p *Proxy) infer(x *exchange, status int, respHeader http.Header, resp capture.Summary, upstreamErr error) (journal.Draft, bool) {
	rule := x.rule
	req := x.reqTee.Summary()
	reqJSON := parseJSON(req)
	respJSON := parseJSON(resp)
	src := sourceCtx{match: x.match, req: reqJSON, resp: respJSON, respHeader: respHeader}
	success := upstreamErr == nil && status >= 200 && status < 300

	d := journal.Draft{
		EventID: x.eventID, EventType: rule.EventType, Action: rule.Action, ResourceType: rule.ResourceType,
		Actor: x.id.Actor, Result: chain.ResultFailed,
	}
	if success {
		d.Result = chain.ResultSuccess
	}
	ctx := map[string]any{}
	d.ResourceID = rules.CanonicalID(src.first(rule.ResourceID))
	meta := map[string]any{}
	for _, f := range rule.Metadata {
		if v := src.first(f.Sources); v != "" {
			if f.Key == "workflow.id" || strings.HasSuffix(f.Key, ".id") || strings.HasSuffix(f.Key, "_from") {
				v = rules.CanonicalID(v)
			}
			meta[f.Key] = capture.Sanitize(v)
		}
	}
	if rule.Kind == config.KindExecutionStart && success {
		if status == http.StatusOK {
			// Flowker answers 200 only when replaying a terminal execution: nothing new happened.
			p.m.Replays.Inc()
			return d, false
		}
		if d.ResourceID != "" {
			d.Once = "exec-start:" + d.ResourceID
			wf, _ := meta["workflow.id"].(string)
			d.Watch = &journal.Watch{ExecutionID: d.ResourceID, WorkflowID: wf, Since: time.Now().UTC()}
		}
	}
	if d.ResourceID == "" && len(rule.ResourceID) > 0 {
		if success {
			ctx["resourceIdUnavailable"] = "the response did not carry the resource id (" + sourceList(rule.ResourceID) + ")"
		} else {
			ctx["resourceIdUnavailable"] = "the request failed, so no resource was created or identified"
		}
	}

	// Context: what the sidecar saw.
	ctx["method"] = x.matchMethod()
	ctx["path"] = capture.Sanitize(x.path())
	ctx["route"] = rule.Method + " " + rule.Path
	ctx["rule"] = rule.Name
	ctx["requestId"] = x.eventID
	ctx["failMode"] = x.mode
	if q := p.redactor(rule).Query(x.rawQuery()); q != nil {
		ctx["query"] = q
	}
	if status != 0 {
		ctx["status"] = status
	}
	if !success {
		if code, msg := errorCode(respJSON); code != "" {
			ctx["errorCode"] = code
			if msg != "" {
				ctx["errorMessage"] = clip(capture.Sanitize(msg), 1024)
			}
		}
	}
	if upstreamErr != nil {
		ctx["upstreamError"] = clip(capture.Sanitize(upstreamErr.Error()), 512)
	}
	total := time.Since(x.start)
	dur := map[string]any{"total": ms(total)}
	if !x.upstream.IsZero() {
		dur["upstream"] = ms(x.upstream.Sub(x.start))
	}
	ctx["durationMs"] = dur
	if ua := x.header("User-Agent"); ua != "" {
		ctx["userAgent"] = clip(capture.Sanitize(ua), 512)
	}
	if id := x.header("X-Request-Id"); id != "" {
		ctx["clientRequestId"] = clip(capture.Sanitize(id), 256)
	}
	if k := x.header("Idempotency-Key"); k != "" {
		ctx["idempotencyKey"] = clip(capture.Sanitize(k), 256)
	}
	auth := map[string]any{"method": x.id.Method, "verified": x.id.Verified}
	if x.id.Name != "" {
		auth["name"] = x.id.Name
	}
	if x.id.Detail != "" {
		auth["detail"] = x.id.Detail
	}
	ctx["auth"] = auth
	if x.id.Peer != x.id.Actor.IPAddress || len(x.id.Forwarded) > 0 {
		ctx["peer"] = x.id.Peer
		if len(x.id.Forwarded) > 0 {
			ctx["forwardedFor"] = x.id.Forwarded
		}
	}
	ctx["request"] = p.bodyContext(rule, x.header("Content-Type"), req)
	if upstreamErr == nil {
		ctx["response"] = p.bodyContext(rule, respHeader.Get("Content-Type"), resp)
	}

	d.Context = canonical(ctx)
	d.Metadata = canonical(meta)
	return d, true
}

// bodyContext describes a body: size, digest, content type and a redacted, capped rendering.
func (p *Proxy) bodyContext(rule *rules.Rule, contentType string, s capture.Summary) map[string]any {
	out := map[string]any{"bytes": s.Bytes}
	if contentType != "" {
		out["contentType"] = clip(capture.Sanitize(contentType), 128)
	}
	if s.Bytes == 0 {
		return out
	}
	if s.SHA256 != "" {
		out["sha256"] = s.SHA256
	} else {
		out["complete"] = false // not read to the end (upstream answered early, or the body broke)
	}
	if s.Err != nil {
		out["readError"] = clip(capture.Sanitize(s.Err.Error()), 256)
	}
	if !p.opts.CaptureBodies || !capture.LooksJSON(contentType, s.Captured) {
		if s.Bytes > 0 && !capture.LooksJSON(contentType, s.Captured) {
			out["body"] = nil
			out["bodyOmitted"] = "not JSON: only its size and digest are kept"
		}
		return out
	}
	complete := s.Complete && !s.Truncated
	r, err := p.redactor(rule).Render(s.Captured, complete, p.opts.MaxBodyBytes)
	if err != nil {
		out["bodyOmitted"] = "not valid JSON: only its size and digest are kept"
		return out
	}
	out["body"] = r.JSON
	if r.Truncated || s.Truncated {
		out["truncated"] = true
	}
	if r.Invalid {
		out["invalidJson"] = true
	}
	return out
}

func (p *Proxy) redactor(r *rules.Rule) *capture.Redactor {
	if red, ok := p.redactors[r]; ok {
		return red
	}
	return p.opts.Redactor.With(r.Redact)
}

func (x *exchange) matchMethod() string { return x.method }

func (x *exchange) path() string { return x.rawPath }

func (x *exchange) rawQuery() string { return x.query }

func (x *exchange) header(name string) string { return x.hdr.Get(name) }

func ms(d time.Duration) json.Number {
	return json.Number(strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64))
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

// canonical renders v as canonical jsonb text. The inputs are built here from sanitised strings,
// json.Numbers and redacted renderings, so an error is a bug; it is reported inside the event
// rather than dropping the event.
func canonical(v map[string]any) []byte {
	if len(v) == 0 {
		return []byte("{}")
	}
	raw, err := json.Marshal(v)
	if err == nil {
		var out []byte
		if out, err = jsonb.Canonical(raw); err == nil {
			return out
		}
	}
	fallback, _ := json.Marshal(map[string]string{"encodingError": err.Error()})
	out, _ := jsonb.Canonical(fallback)
	return out
}

// parseJSON decodes a fully captured JSON body (numbers kept as written); nil otherwise.
func parseJSON(s capture.Summary) any {
	if len(s.Captured) == 0 || s.Truncated {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(s.Captured))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}

// errorCode extracts Flowker's error code and message from an error body: {code, title, message}
// (code is "FLK-xxxx", "UNAUTHORIZED", or a number for framework errors).
func errorCode(body any) (code, msg string) {
	m, ok := body.(map[string]any)
	if !ok {
		return "", ""
	}
	switch c := m["code"].(type) {
	case string:
		code = c
	case json.Number:
		code = c.String()
	}
	msg, _ = m["message"].(string)
	return clip(capture.Sanitize(code), 64), msg
}

type sourceCtx struct {
	match      *rules.Match
	req, resp  any
	respHeader http.Header
}

// first returns the first non-empty value of srcs.
func (s sourceCtx) first(srcs []rules.Source) string {
	for _, src := range srcs {
		var v string
		switch src.Kind {
		case rules.FromPath:
			if s.match != nil {
				v = s.match.Param(src.Name)
			}
		case rules.FromRequest:
			v = lookup(s.req, src.Name)
		case rules.FromResponse:
			v = lookup(s.resp, src.Name)
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

// lookup follows a dot path into decoded JSON; scalars are returned as text.
func lookup(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		return strconv.FormatBool(t)
	}
	return ""
}
