package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
	"github.com/flowker-audit/flowker-audit/proxy/rules"
)

// IntentDetail is what an intent carries, besides the event draft, so that the outcome of a
// request whose event was never journaled can be learned from Flowker later (see
// internal/app's intent recovery). It is stored as JSON in journal.Intent.Detail.
type IntentDetail struct {
	Rule   string `json:"rule"`
	Kind   string `json:"kind,omitempty"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// Params are the rule's path parameters, canonicalised when they are ids.
	Params map[string]string `json:"params,omitempty"`
	// Name and ProviderID are read from a complete JSON request body (creates are matched on them).
	Name       string `json:"name,omitempty"`
	ProviderID string `json:"providerId,omitempty"`
	// IdempotencyKey is the request's Idempotency-Key header (execution starts).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	FailMode       string `json:"failMode,omitempty"`
}

// ParseIntentDetail decodes an intent's Detail.
func ParseIntentDetail(b []byte) (IntentDetail, error) {
	var d IntentDetail
	err := json.Unmarshal(b, &d)
	return d, err
}

// holdRequest reads the request body, up to capture.max_hold_bytes, before it is forwarded: its
// digest and capture go into the intent, which must be durable before Flowker sees anything.
// The bytes held count against capture.max_hold_total (released by the returned func). It
// returns the body to forward: the held bytes, then the rest streamed, or the read error.
func (p *Proxy) holdRequest(x *exchange, r *http.Request) (io.ReadCloser, func()) {
	if r.Body == nil || r.Body == http.NoBody {
		x.reqTee = capture.NewTee(nil, 0)
		return r.Body, func() {}
	}
	// The tee counts and hashes (keyed); the held bytes are the capture, taken from the
	// exchange's share of the budget as they are read.
	x.reqTee = capture.NewTee(r.Body, 0).WithDigestKey(p.opts.DigestKey)
	held, cut, err := hold(x.reqTee, p.opts.MaxHoldBytes, x.pool, r.ContentLength)
	p.heldChanged()
	x.reqHeld = held[:min(len(held), p.opts.MaxHoldBytes):min(len(held), p.opts.MaxHoldBytes)]
	x.reqCut = cut // the budget, not the hold limit, stopped the read
	pool := x.pool
	release := func() { pool.Give(len(held)); p.heldChanged() }
	var rest io.Reader
	switch {
	case err != nil:
		rest = errReader{err} // the upstream call fails on it, as it did when the body streamed
	case !x.reqTee.Summary().Complete:
		rest = x.reqTee // beyond the hold limit (or the budget) the body streams on
	default:
		// Held whole: a body net/http knows is in memory goes out with the headers in one write.
		// (The server closes the incoming body itself.)
		return io.NopCloser(bytes.NewReader(held)), release
	}
	return &heldBody{Reader: io.MultiReader(bytes.NewReader(held), rest), closer: x.reqTee, release: func() {}}, release
}

// requestSummary is the request body as the event describes it: the tee's count and digest, the
// held bytes as the capture.
func (x *exchange) requestSummary() capture.Summary {
	s := x.reqTee.Summary()
	if x.reqHeld != nil || s.Bytes > 0 {
		s.Captured = x.reqHeld
		s.Truncated = s.Bytes > int64(len(x.reqHeld)) || x.reqCut
	}
	return s
}

// intend makes the exchange's intent durable before it is forwarded. On failure the request is
// refused (fail_closed: 503, Flowker never sees it) or forwarded with the gap counted (fail_open);
// it reports whether to forward.
func (p *Proxy) intend(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	in := p.intentOf(x)
	// Not cancelled with the client: a request whose client left mid-body is still forwarded and
	// recorded as a failed attempt, as before intents. (The wait is bounded by the writer: it
	// answers every queued request.)
	err := p.opts.Journal.Intend(context.WithoutCancel(r.Context()), in)
	if err == nil {
		x.intended = true
		return true
	}
	reason := journalReason(err)
	if x.mode == config.FailClosed {
		p.m.Refused.WithLabelValues(reason).Inc()
		p.log.Error("audited request refused before reaching Flowker: its intent could not be made durable (fail_closed)",
			"method", r.Method, "route", x.route, "err", err)
		writeError(w, http.StatusServiceUnavailable, "FLKAUD-0503", "Service Unavailable",
			"the audit journal cannot record this request, so it was not forwarded; retry later")
		return false
	}
	p.m.Unintended.WithLabelValues(reason).Inc()
	p.log.Warn("forwarding without a durable intent (fail_open): if the sidecar dies before the event is journaled, the change has no event",
		"route", x.route, "event_id", x.eventID, "err", err)
	return true
}

// matchesOnBody are the built-in rules whose outcome recovery matches on the request body's
// name (and provider).
var matchesOnBody = map[string]bool{"workflow.create": true, "workflow.clone": true, "workflow.update": true,
	"provider_config.create": true, "provider_config.update": true}

var nameKey, providerIDKey = capture.Segs("name"), capture.Segs("providerId")

// intentOf builds the intent of an exchange: the event as known before forwarding, and what
// recovery needs to learn the outcome.
func (p *Proxy) intentOf(x *exchange) journal.Intent {
	d := p.pendingDraft(x)
	// The detail is written by hand (it is decoded by ParseIntentDetail): one allocation.
	o := newObj(256)
	o.str("rule", x.rule.Name)
	if x.rule.Kind != "" {
		o.str("kind", x.rule.Kind)
	}
	o.str("method", capture.Sanitize(x.method))
	o.str("path", capture.Sanitize(x.rawPath))
	o.str("failMode", x.mode)
	if k := x.hdr.Get("Idempotency-Key"); k != "" {
		o.str("idempotencyKey", clip(capture.Sanitize(k), 256))
	}
	if x.match != nil && len(x.match.Params) > 0 {
		params := newObj(128)
		for k, v := range x.match.Params {
			params.str(capture.Sanitize(k), clip(capture.Sanitize(rules.CanonicalID(v)), 256))
		}
		o.raw("params", params.bytes())
	}
	if matchesOnBody[x.rule.Name] && x.rule.Builtin {
		// Read without checking the whole body is valid JSON first (that costs more than the
		// lookups): a malformed body only makes recovery match on nothing.
		if req := x.requestSummary(); req.Complete && !req.Truncated {
			// Read as Flowker's decoder reads them (last duplicate wins, fields match in any case).
			if v := requestValue(x, req, "name", nameKey); v.Found && !v.Mismatch {
				o.str("name", clip(capture.Sanitize(v.Text), 256))
			}
			if v := requestValue(x, req, "providerId", providerIDKey); v.Found && !v.Mismatch {
				o.str("providerId", clip(capture.Sanitize(v.Text), 256))
			}
		}
	}
	return journal.Intent{ID: x.eventID, Start: x.start, Draft: d, Detail: o.bytes()}
}

// requestValue is the request body's value at name: the one the event's description already
// read (rules name the same fields in their metadata), or read now.
func requestValue(x *exchange, req capture.Summary, name string, path []capture.Seg) capture.Value {
	if m := x.reqMemo; m != nil {
		for _, mv := range m.vals {
			if mv.src.Kind == rules.FromRequest && mv.src.Name == name {
				return mv.v
			}
		}
	}
	return capture.Decode(req.Captured, path)
}

// stranded holds events whose request reached Flowker but whose append failed (journal full or
// failing) while their intent is durable: they are appended once the journal writes again
// (RetryStranded). At most maxStranded are kept in memory; beyond that the intent alone remains,
// and the next start's recovery resolves it.
type stranded struct {
	mu     sync.Mutex
	drafts []journal.Draft
}

const maxStranded = 10000

func (p *Proxy) strand(d journal.Draft) {
	p.stranded.mu.Lock()
	defer p.stranded.mu.Unlock()
	if len(p.stranded.drafts) >= maxStranded {
		p.log.Error("too many events waiting for the journal; this one is left to recovery at the next start (its intent is durable)",
			"event_id", d.EventID)
		return
	}
	p.stranded.drafts = append(p.stranded.drafts, d)
	p.m.Stranded.Set(float64(len(p.stranded.drafts)))
}

// RetryStranded appends the events that could not be journaled while the journal was full or
// failing (their requests had a durable intent). It stops at the first failure and returns how
// many were journaled.
func (p *Proxy) RetryStranded(ctx context.Context) (int, error) {
	p.stranded.mu.Lock()
	defer p.stranded.mu.Unlock()
	n := 0
	defer func() {
		p.stranded.drafts = p.stranded.drafts[n:]
		p.m.Stranded.Set(float64(len(p.stranded.drafts)))
	}()
	for _, d := range p.stranded.drafts {
		actx, cancel := context.WithTimeout(ctx, p.opts.AppendTimeout)
		ev, err := p.opts.Journal.Append(actx, d)
		cancel()
		switch {
		case err == nil:
			p.m.Events.WithLabelValues(ev.EventType, ev.Result).Inc()
			p.m.Late.Inc()
			if d.Watch != nil && p.opts.Observer != nil {
				p.opts.Observer.Started(d.Watch.ExecutionID, d.Watch.WorkflowID)
			}
			p.log.Warn("event journaled late: its request reached Flowker while the journal could not write",
				"event_id", ev.EventID, "sequence", ev.Sequence, "event_type", ev.EventType, "result", ev.Result)
		case errors.Is(err, journal.ErrDuplicate):
		default:
			return n, err
		}
		n++
	}
	return n, nil
}

// StrandedCount is the number of events waiting for the journal to write again.
func (p *Proxy) StrandedCount() int {
	p.stranded.mu.Lock()
	defer p.stranded.mu.Unlock()
	return len(p.stranded.drafts)
}

// resolve removes the intent of an exchange that turned out to need no event.
func (p *Proxy) resolve(ctx context.Context, x *exchange) {
	if !x.intended {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.AppendTimeout)
	defer cancel()
	if err := p.opts.Journal.Resolve(rctx, x.eventID); err != nil {
		// Left pending, the intent is resolved at the next start (the outcome is then learned
		// from Flowker: an execution replay finds the execution already recorded).
		p.log.Warn("could not resolve an intent that needs no event", "event_id", x.eventID, "err", err)
	}
}
