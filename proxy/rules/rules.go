// Package rules maps Flowker routes to audit event specifications.
//
// Matching follows Flowker's router (Fiber v2 with its default configuration): the path used for
// route detection is the raw request path as received — not percent-decoded and with repeated
// slashes kept — lower-cased, with trailing slashes removed. So /V1/Workflows/ is the workflow
// create route (Flowker executes it), while //v1/workflows and /v1/work%66lows match nothing here
// exactly as they match nothing in Flowker (which answers 404). Path parameters keep their raw
// text. Because the proxy records every mutating request that matches no rule as an
// UNCLASSIFIED_MUTATION event, no spelling of a path can make a state change escape the trail.
package rules

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/proxy/capture"
)

// SourceKind says where a value comes from.
type SourceKind string

// Source kinds.
const (
	FromPath           SourceKind = "path"
	FromRequest        SourceKind = "request"
	FromResponse       SourceKind = "response"
	FromResponseHeader SourceKind = "response_header"
	FromLiteral        SourceKind = "literal"
)

// Source is one place a value can come from, e.g. response:workflowId.
type Source struct {
	Kind SourceKind
	Name string        // parameter, dot path into the body, header name, or the literal value
	Path []capture.Seg // Name split on dots (request and response sources)
}

func (s Source) String() string { return string(s.Kind) + ":" + s.Name }

// ParseSource parses "kind:name".
func ParseSource(s string) (Source, error) {
	k, n, ok := strings.Cut(s, ":")
	if !ok || n == "" {
		return Source{}, fmt.Errorf("source %q: want kind:name", s)
	}
	switch SourceKind(k) {
	case FromRequest, FromResponse:
		path, err := parsePath(n)
		if err != nil {
			return Source{}, fmt.Errorf("source %q: %w", s, err)
		}
		return Source{Kind: SourceKind(k), Name: n, Path: path}, nil
	case FromPath, FromResponseHeader, FromLiteral:
		return Source{Kind: SourceKind(k), Name: n}, nil
	}
	return Source{}, fmt.Errorf("source %q: unknown kind %q", s, k)
}

// parsePath splits a body path: dot-separated struct fields, matched as encoding/json matches
// them (case-insensitively), each optionally followed by [key] steps into a map, matched exactly:
// "params[workflowName]" is the workflowName entry of the params map.
func parsePath(n string) ([]capture.Seg, error) {
	var out []capture.Seg
	for _, part := range strings.Split(n, ".") {
		field, rest, _ := strings.Cut(part, "[")
		if field == "" {
			return nil, fmt.Errorf("empty field in path %q", n)
		}
		out = append(out, capture.Seg{Name: field})
		if rest == "" {
			if strings.HasSuffix(part, "[") {
				return nil, fmt.Errorf("bad map key in path %q", n)
			}
			continue
		}
		if !strings.HasSuffix(rest, "]") {
			return nil, fmt.Errorf("bad map key in path %q", n)
		}
		for _, k := range strings.Split("["+rest, "]") {
			if k == "" {
				continue
			}
			if !strings.HasPrefix(k, "[") || len(k) < 2 {
				return nil, fmt.Errorf("bad map key in path %q", n)
			}
			out = append(out, capture.Seg{Name: k[1:], Exact: true})
		}
	}
	return out, nil
}

// MetaField is one metadata key and where its value comes from (first non-empty source wins).
type MetaField struct {
	Key     string
	Sources []Source
}

// Rule is the audit specification of one route.
type Rule struct {
	Name         string
	Method       string // upper case, or "*" for any method
	Path         string // template: literal segments, {param}, and a trailing /* wildcard
	Audit        bool
	Kind         string // config.KindStandard, KindExecutionStart or KindExecutionStatus
	EventType    string
	Action       string
	ResourceType string
	ResourceID   []Source
	Metadata     []MetaField
	Redact       []string // dot paths redacted in captured bodies
	FailMode     string   // "" = the journal's default
	Builtin      bool

	segs     []string // lower-cased template segments
	params   []string // parameter name of each segment ("" for a literal)
	wildcard bool
}

// Match is a matched rule with the path parameters (raw text).
type Match struct {
	Rule   *Rule
	Params map[string]string
}

// Param returns a path parameter.
func (m *Match) Param(name string) string { return m.Params[name] }

// Table is an ordered set of rules: configured rules first, then the built-in ones.
type Table struct {
	rules []*Rule
}

func (r *Rule) compile() error {
	if !strings.HasPrefix(r.Path, "/") {
		return fmt.Errorf("rule %q: path %q must start with /", r.Name, r.Path)
	}
	p := strings.ToLower(strings.TrimRight(r.Path, "/"))
	if strings.HasSuffix(p, "/*") {
		r.wildcard = true
		p = strings.TrimSuffix(p, "/*")
	}
	r.segs = strings.Split(p, "/")[1:]
	orig := strings.Split(strings.TrimSuffix(strings.TrimRight(r.Path, "/"), "/*"), "/")[1:]
	r.params = make([]string, len(r.segs))
	for i, s := range r.segs {
		if s == "" || s == "*" {
			return fmt.Errorf("rule %q: path %q has an empty or inner * segment", r.Name, r.Path)
		}
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			r.params[i] = strings.TrimSuffix(strings.TrimPrefix(orig[i], "{"), "}")
		}
	}
	r.Method = strings.ToUpper(r.Method)
	return nil
}

// New builds the table from the built-in rules and the configured ones. A configured rule with
// the same method and path as a built-in one replaces it; others are matched first.
func New(configured []config.Rule) (*Table, error) {
	t := &Table{}
	replaced := map[string]bool{}
	for i, c := range configured {
		r := Rule{
			Name: c.Name, Method: c.Method, Path: c.Path, Audit: c.Audit == nil || *c.Audit, Kind: c.Kind,
			EventType: c.EventType, Action: c.Action, ResourceType: c.ResourceType, Redact: c.Redact, FailMode: c.FailMode,
		}
		if r.Name == "" {
			r.Name = fmt.Sprintf("config.rules[%d]", i)
		}
		for _, s := range c.ResourceID {
			src, err := ParseSource(s)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].resource_id: %w", i, err)
			}
			r.ResourceID = append(r.ResourceID, src)
		}
		for _, k := range sortedKeys(c.Metadata) {
			f := MetaField{Key: k}
			for _, s := range c.Metadata[k] {
				src, err := ParseSource(s)
				if err != nil {
					return nil, fmt.Errorf("rules[%d].metadata.%s: %w", i, k, err)
				}
				f.Sources = append(f.Sources, src)
			}
			r.Metadata = append(r.Metadata, f)
		}
		if err := r.compile(); err != nil {
			return nil, err
		}
		replaced[r.key()] = true
		rr := r
		t.rules = append(t.rules, &rr)
	}
	for _, b := range Builtin() {
		if err := b.compile(); err != nil {
			return nil, err
		}
		if replaced[b.key()] {
			continue
		}
		bb := b
		t.rules = append(t.rules, &bb)
	}
	return t, nil
}

func (r *Rule) key() string {
	return r.Method + " " + strings.Join(r.segs, "/") + map[bool]string{true: "/*"}[r.wildcard]
}

// Rules returns the rules in match order.
func (t *Table) Rules() []*Rule { return t.rules }

// asciiEqualFold reports whether seg equals lit, a lower-case rule literal, ignoring ASCII case
// only (Flowker's router lower-cases ASCII letters; Unicode folding such as the Kelvin sign to
// "k" would match paths Flowker does not).
func asciiEqualFold(lit, seg string) bool {
	if len(lit) != len(seg) {
		return false
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

// Match finds the first rule for method (case-sensitive) and the raw (escaped) request path, or nil.
func (t *Table) Match(method, rawPath string) *Match {
	trimmed := rawPath
	for len(trimmed) > 1 && trimmed[len(trimmed)-1] == '/' {
		trimmed = trimmed[:len(trimmed)-1]
	}
	if !strings.HasPrefix(trimmed, "/") {
		return nil
	}
	raw := strings.Split(trimmed, "/")[1:]
	// Methods are case-sensitive, as in Fiber: "post" runs no route there (400 Invalid http
	// method), so it matches no rule here and a mutating one is recorded as unclassified.
	known := fiberMethod(method)
	for _, r := range t.rules {
		if r.Method != "*" && r.Method != method || r.Method == "*" && !known {
			continue
		}
		if params, ok := r.match(raw); ok {
			return &Match{Rule: r, Params: params}
		}
	}
	return nil
}

// fiberMethod reports whether Fiber v2 routes method at all (any other answers 400).
func fiberMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return true
	}
	return false
}

func (r *Rule) match(raw []string) (map[string]string, bool) {
	if len(raw) < len(r.segs) || (!r.wildcard && len(raw) != len(r.segs)) {
		return nil, false
	}
	var params map[string]string
	for i, s := range r.segs {
		if name := r.params[i]; name != "" {
			if raw[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[name] = raw[i]
			continue
		}
		if !asciiEqualFold(s, raw[i]) {
			return nil, false
		}
	}
	if r.wildcard {
		if params == nil {
			params = map[string]string{}
		}
		params["*"] = "/" + strings.Join(raw[len(r.segs):], "/")
	}
	return params, true
}

// Mutating reports whether a request with method can change state when no rule says otherwise.
// CORS preflights are never mutating.
func Mutating(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return false
	}
	return !Preflight(r)
}

// Preflight reports whether Flowker's CORS middleware (Fiber v2.52's, registered before every
// route) answers r itself (204) without running any route: an OPTIONS request carrying both an
// Origin and an Access-Control-Request-Method header. An OPTIONS request without Origin is
// outside CORS and reaches the routes (a webhook route takes every method).
func Preflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// CanonicalID returns the canonical lower-case form of a UUID in any form Flowker accepts
// (upper case, braces, urn:uuid:), or s as event text (chain.CleanText, at most 255 bytes) when it
// is not a UUID.
func CanonicalID(s string) string {
	if u, err := uuid.Parse(s); err == nil {
		return u.String()
	}
	return chain.CleanText(s, 255)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortStableFunc(keys, strings.Compare)
	return keys
}

// Unclassified is the rule applied to a mutating request that matched no rule.
var Unclassified = &Rule{
	Name: "unclassified", Method: "*", Path: "/*", Audit: true,
	EventType: chain.UnclassifiedMutation, Action: chain.ActionUnknown, ResourceType: chain.ResourceUnknown,
}
