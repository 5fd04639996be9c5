package auditapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Authenticator decides whether a request may use the audit API. It runs before anything else,
// so a refusal never reveals whether an event exists.
//
// Authenticate returns nil to allow, a *DeniedError to answer 401, and an error wrapping
// ErrAuthUnavailable to answer 503 (the check itself could not be made). Any other error is
// treated as unavailable.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) error
}

// AuthModer is implemented by authenticators that tell the Audit Trail page which credential to
// ask for: "api_key" (the sidecar's audit API key), "delegate" (the user's Flowker credential)
// or "none" (nothing is configured).
type AuthModer interface {
	AuthMode() string
}

// Auth modes reported to the Audit Trail page.
const (
	AuthModeAPIKey   = "api_key"
	AuthModeDelegate = "delegate"
	AuthModeNone     = "none"
)

// HeaderAPIKey is the credential header, the same one Flowker uses.
const HeaderAPIKey = "X-API-Key"

// DeniedError refuses a request with 401 and Message.
type DeniedError struct{ Message string }

func (e *DeniedError) Error() string { return "unauthorized: " + e.Message }

// ErrAuthUnavailable reports that credentials could not be checked (the upstream is down).
var ErrAuthUnavailable = errors.New("authentication backend unavailable")

// msgInvalidKey is Flowker's own 401 message.
const msgInvalidKey = "API Key missing or invalid"

// NoneConfigured refuses every request: the audit API is never open by default.
type NoneConfigured struct{}

// Authenticate always refuses.
func (NoneConfigured) Authenticate(context.Context, *http.Request) error {
	return &DeniedError{Message: "audit API authentication is not configured"}
}

// AuthMode returns AuthModeNone.
func (NoneConfigured) AuthMode() string { return AuthModeNone }

// StaticKeys accepts requests whose X-API-Key is one of a configured list. Keys are kept only
// as SHA-256 digests and compared in constant time, all of them on every request.
type StaticKeys struct {
	digests [][sha256.Size]byte
}

// NewStaticKeys returns an authenticator for keys; it fails when the list or a key is empty.
func NewStaticKeys(keys []string) (*StaticKeys, error) {
	if len(keys) == 0 {
		return nil, errors.New("static api keys: no key configured")
	}
	s := &StaticKeys{}
	for i, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("static api keys: key %d is empty", i)
		}
		s.digests = append(s.digests, sha256.Sum256([]byte(k)))
	}
	return s, nil
}

// Authenticate checks X-API-Key.
func (s *StaticKeys) Authenticate(_ context.Context, r *http.Request) error {
	k := r.Header.Get(HeaderAPIKey)
	d := sha256.Sum256([]byte(k))
	match := 0
	for i := range s.digests {
		match |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	if k == "" || match != 1 {
		return &DeniedError{Message: msgInvalidKey}
	}
	return nil
}

// AuthMode returns AuthModeAPIKey.
func (s *StaticKeys) AuthMode() string { return AuthModeAPIKey }

// AnyOf allows a request that any of auths allows. When none allows it, the answer is 503 if one
// of them could not decide (ErrAuthUnavailable), else the first refusal.
func AnyOf(auths ...Authenticator) Authenticator { return anyOf(auths) }

type anyOf []Authenticator

func (a anyOf) Authenticate(ctx context.Context, r *http.Request) error {
	var denied, unavailable error
	for _, au := range a {
		err := au.Authenticate(ctx, r)
		if err == nil {
			return nil
		}
		var d *DeniedError
		switch {
		case errors.As(err, &d):
			if denied == nil {
				denied = err
			}
		case unavailable == nil:
			unavailable = err
		}
	}
	switch {
	case unavailable != nil:
		return unavailable
	case denied != nil:
		return denied
	}
	return NoneConfigured{}.Authenticate(ctx, r)
}

// AuthMode is the mode of the first member that has one other than "none".
func (a anyOf) AuthMode() string {
	for _, au := range a {
		if m, ok := au.(AuthModer); ok && m.AuthMode() != AuthModeNone {
			return m.AuthMode()
		}
	}
	return AuthModeNone
}

// nilEventPath is probed on Flowker to check a credential: Flowker runs every guard of the audit
// route, then answers 404 FLK-0600 for this id, which no event has.
const nilEventPath = "/v1/audit-events/00000000-0000-0000-0000-000000000000"

// DelegateOptions configures Delegate.
type DelegateOptions struct {
	// Upstream is Flowker's base URL (reached directly, never through the sidecar itself).
	Upstream *url.URL
	// Client makes the probe requests; default: a client with a 5 s timeout.
	Client *http.Client
	// TTL is how long an allowed credential is remembered; default 30 s.
	TTL time.Duration
	// NegativeTTL is how long a refused credential is remembered; default 5 s, at most TTL.
	NegativeTTL time.Duration
	// MaxEntries bounds the decision cache; default 10000.
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives upstream failures (never credentials); default discards.
	Logger *slog.Logger
}

// Delegate lets Flowker decide: it forwards the caller's X-API-Key and Authorization headers to
// Flowker's GET /v1/audit-events/00000000-0000-0000-0000-000000000000. Flowker's 404 FLK-0600
// means every guard passed (allowed), 401/403 means refused, anything else (or no answer) is
// 503. A 404 without FLK-0600 (a wrong upstream URL answering 404 for everything) is treated as
// unavailable, never as allowed. Decisions are cached by the SHA-256 of the credentials.
type Delegate struct {
	upstream    string
	client      *http.Client
	ttl, negTTL time.Duration
	max         int
	now         func() time.Time
	log         *slog.Logger

	group singleflight.Group
	mu    sync.Mutex
	cache map[[sha256.Size]byte]decision
}

type decision struct {
	allowed bool
	expires time.Time
}

// NewDelegate returns a delegating authenticator.
func NewDelegate(opts DelegateOptions) (*Delegate, error) {
	if opts.Upstream == nil || opts.Upstream.Host == "" || (opts.Upstream.Scheme != "http" && opts.Upstream.Scheme != "https") {
		return nil, errors.New("delegate auth: upstream must be an absolute http(s) URL")
	}
	d := &Delegate{
		upstream: strings.TrimSuffix(opts.Upstream.String(), "/") + nilEventPath,
		client:   opts.Client,
		ttl:      opts.TTL,
		negTTL:   opts.NegativeTTL,
		max:      opts.MaxEntries,
		now:      opts.Now,
		log:      opts.Logger,
		cache:    make(map[[sha256.Size]byte]decision),
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: 5 * time.Second}
	}
	if d.ttl <= 0 {
		d.ttl = 30 * time.Second
	}
	if d.negTTL <= 0 {
		d.negTTL = 5 * time.Second
	}
	d.negTTL = min(d.negTTL, d.ttl)
	if d.max <= 0 {
		d.max = 10000
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

// AuthMode returns AuthModeDelegate.
func (d *Delegate) AuthMode() string { return AuthModeDelegate }

// credentialKey digests the credentials with their lengths, so that no two pairs collide.
func credentialKey(apiKey, authz string) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(apiKey)))
	h.Write(n[:])
	h.Write([]byte(apiKey))
	h.Write([]byte(authz))
	var k [sha256.Size]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Authenticate asks Flowker (or the cache).
func (d *Delegate) Authenticate(ctx context.Context, r *http.Request) error {
	apiKey, authz := r.Header.Get(HeaderAPIKey), r.Header.Get("Authorization")
	if strings.TrimSpace(apiKey) == "" && strings.TrimSpace(authz) == "" {
		// No credential is never delegated: a Flowker running without auth would admit it.
		return &DeniedError{Message: msgInvalidKey}
	}
	key := credentialKey(apiKey, authz)
	now := d.now()
	d.mu.Lock()
	dec, ok := d.cache[key]
	d.mu.Unlock()
	if ok && now.Before(dec.expires) {
		return dec.result()
	}
	v, err, _ := d.group.Do(hex.EncodeToString(key[:]), func() (any, error) {
		// Shared by concurrent callers: not cancelled by the first caller going away.
		allowed, err := d.probe(context.WithoutCancel(ctx), apiKey, authz)
		if err != nil {
			return nil, err
		}
		ttl := d.ttl
		if !allowed {
			ttl = d.negTTL
		}
		d.store(key, decision{allowed: allowed, expires: d.now().Add(ttl)})
		return allowed, nil
	})
	if err != nil {
		return err
	}
	return decision{allowed: v.(bool)}.result()
}

func (dec decision) result() error {
	if dec.allowed {
		return nil
	}
	return &DeniedError{Message: msgInvalidKey}
}

func (d *Delegate) store(key [sha256.Size]byte, dec decision) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cache) >= d.max {
		now := d.now()
		for k, v := range d.cache {
			if !now.Before(v.expires) {
				delete(d.cache, k)
			}
		}
		if len(d.cache) >= d.max {
			clear(d.cache)
		}
	}
	d.cache[key] = dec
}

// probe asks Flowker. It returns (allowed, nil), or an error wrapping ErrAuthUnavailable.
func (d *Delegate) probe(ctx context.Context, apiKey, authz string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.upstream, nil)
	if err != nil {
		return false, fmt.Errorf("%w: build probe request: %w", ErrAuthUnavailable, err)
	}
	if apiKey != "" {
		req.Header.Set(HeaderAPIKey, apiKey)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		d.log.Warn("delegated audit auth: upstream unreachable", "err", redactURLError(err))
		return false, fmt.Errorf("%w: %w", ErrAuthUnavailable, redactURLError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, nil
	case http.StatusNotFound:
		var e struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(body, &e) == nil && e.Code == CodeNotFound {
			return true, nil
		}
		d.log.Error("delegated audit auth: upstream answered 404 without FLK-0600; is the upstream URL Flowker's?", "status", resp.StatusCode)
	default:
		d.log.Warn("delegated audit auth: unexpected upstream answer", "status", resp.StatusCode)
	}
	return false, fmt.Errorf("%w: upstream answered %d", ErrAuthUnavailable, resp.StatusCode)
}

// redactURLError keeps the operation and cause of a client error (no headers are ever in it).
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s upstream: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
