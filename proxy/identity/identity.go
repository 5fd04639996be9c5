// Package identity establishes who made an audited request and from where, trusting nothing a
// client can forge.
//
// Actor, in order of precedence:
//  1. a trusted identity header (e.g. X-Forwarded-User) — only when the TCP peer is one of the
//     configured trusted proxies; from anyone else the header is ignored;
//  2. a Bearer JWT: the subject (Flowker's "owner/sub" form for normal users). Its signature is
//     verified when a JWKS URL, public key or HMAC secret is configured, and the event says
//     whether it was;
//  3. an X-API-Key: actor type api_key with id "key:" + the first 12 hex digits of
//     HMAC-SHA256(fingerprint key, API key) — never the key itself;
//  4. otherwise user/anonymous.
//
// IP address: the TCP peer; when the peer is a trusted proxy, the right-most X-Forwarded-For hop
// that is not itself a trusted proxy (every hop to its left could have been written by the client).
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flowker-audit/flowker-audit/chain"
)

// Options configure a Resolver.
type Options struct {
	FingerprintKey []byte
	Names          map[string]string // key fingerprint -> display name
	TrustedProxies []string          // IPs and CIDRs
	TrustedHeader  string
	JWT            JWTOptions
	HTTPClient     *http.Client // for the JWKS; default: 10 s timeout
	Logger         *slog.Logger
	Now            func() time.Time
}

// JWTOptions configure Bearer token verification (at most one key source).
type JWTOptions struct {
	JWKSURL       string
	PublicKeyFile string
	HMACSecret    string
	Issuer        string
	Audience      string
	Refresh       time.Duration
}

// Identity is the outcome for one request.
type Identity struct {
	Actor    chain.Actor
	Method   string // trusted_header, jwt, api_key, anonymous
	Verified bool   // the identity was proven (trusted proxy header or verified JWT signature)
	Name     string // configured display name of an API key fingerprint
	Detail   string // why a JWT was not verified, when it was not
	Peer     string // TCP peer address
	// Forwarded is the X-Forwarded-For chain as received from a trusted proxy (nil otherwise).
	Forwarded []string
}

// Resolver resolves identities. It is safe for concurrent use.
type Resolver struct {
	opts    Options
	trusted []netip.Prefix
	log     *slog.Logger

	mu      sync.RWMutex
	keys    *jose.JSONWebKeySet // from JWKS or a public key file
	fetched time.Time
	// attempted is when a request last started a JWKS fetch for an unknown key id.
	attempted time.Time
	hmacKey   []byte
}

// New builds a resolver; with a JWKS URL it fetches the key set once (failures are logged and
// retried on demand, so a temporarily unreachable issuer does not stop the proxy).
func New(ctx context.Context, opts Options) (*Resolver, error) {
	if len(opts.FingerprintKey) < 16 {
		return nil, errors.New("identity: fingerprint key must be at least 16 bytes")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.JWT.Refresh <= 0 {
		opts.JWT.Refresh = 15 * time.Minute
	}
	r := &Resolver{opts: opts, log: opts.Logger}
	for _, p := range opts.TrustedProxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", p, err)
		}
		r.trusted = append(r.trusted, pfx)
	}
	switch {
	case opts.JWT.HMACSecret != "":
		r.hmacKey = []byte(opts.JWT.HMACSecret)
	case opts.JWT.PublicKeyFile != "":
		set, err := loadKeyFile(opts.JWT.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		r.keys = set
	case opts.JWT.JWKSURL != "":
		if err := r.fetchJWKS(ctx); err != nil {
			r.log.Warn("could not fetch the JWKS; JWT identities stay unverified until it can be fetched", "url", opts.JWT.JWKSURL, "err", err)
		}
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Fingerprint returns the actor id of an API key: "key:" and 12 hex digits of its keyed HMAC.
func Fingerprint(key []byte, apiKey string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(apiKey))
	return "key:" + hex.EncodeToString(m.Sum(nil))[:12]
}

// Fingerprint returns the actor id this resolver gives apiKey.
func (r *Resolver) Fingerprint(apiKey string) string {
	return Fingerprint(r.opts.FingerprintKey, apiKey)
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// TrustedPeer reports whether the TCP peer at remoteAddr ("host:port") is a trusted proxy.
func (r *Resolver) TrustedPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && r.isTrusted(a.Unmap())
}

// ClientIP returns the address to record for req and whether the peer is a trusted proxy.
func (r *Resolver) ClientIP(req *http.Request) (ip string, peer string, forwarded []string, trusted bool) {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	peerAddr, err := netip.ParseAddr(host)
	if err != nil {
		return host, host, nil, false
	}
	peerAddr = peerAddr.Unmap()
	peer = peerAddr.String()
	if !r.isTrusted(peerAddr) {
		return peer, peer, nil, false
	}
	for _, h := range req.Header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(h, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				forwarded = append(forwarded, hop)
			}
		}
	}
	ip = peer
	for i := len(forwarded) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(stripPort(forwarded[i]))
		if err != nil {
			break // garbage: stop at the last address we could trust
		}
		ip = a.Unmap().String()
		if !r.isTrusted(a) {
			break
		}
	}
	return ip, peer, forwarded, true
}

func stripPort(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.Trim(s, "[]")
}

// Resolve establishes the identity of req, from the credentials that reach Flowker:
//   - a trusted proxy's identity header (only from a trusted peer);
//   - a JWT whose signature and claims verified;
//   - else the X-API-Key's fingerprint when one is sent: an unverified JWT never overrides a
//     key (the caller could add any token beside a valid key); its claimed subject and why it
//     was not verified go into Detail;
//   - else the token's subject, marked unverified with the reason (Flowker's plugin auth reads
//     tokens unverified, so this is whom Flowker acted for);
//   - else anonymous.
//
// Headers the client names in Connection are removed before forwarding (hop-by-hop), so Flowker
// never sees them; they are ignored here too.
func (r *Resolver) Resolve(req *http.Request) Identity {
	ip, peer, fwd, trusted := r.ClientIP(req)
	id := Identity{Peer: peer, Forwarded: fwd}
	header := func(name string) string {
		if hopByHop(req.Header, name) {
			return ""
		}
		return req.Header.Get(name)
	}
	if h := r.opts.TrustedHeader; h != "" && trusted {
		if v := strings.TrimSpace(header(h)); v != "" {
			id.Actor = chain.Actor{Type: chain.ActorUser, ID: clip(v), IPAddress: ip}
			id.Method, id.Verified = "trusted_header", true
			return id
		}
	}
	key := header("X-API-Key")
	if tok := bearer(header("Authorization")); tok != "" {
		sub, verified, detail := r.jwtSubject(req.Context(), tok)
		switch {
		case sub != "" && verified:
			id.Actor = chain.Actor{Type: chain.ActorUser, ID: clip(sub), IPAddress: ip}
			id.Method, id.Verified = "jwt", true
			return id
		case sub != "" && key == "":
			// What Flowker's plugin auth acts on (it reads the token unverified): recorded, and
			// marked unverified with the reason.
			id.Actor = chain.Actor{Type: chain.ActorUser, ID: clip(sub), IPAddress: ip}
			id.Method, id.Detail = "jwt", detail
			return id
		case sub != "":
			id.Detail = fmt.Sprintf("unverified JWT subject %q not used, an API key was sent (%s)", clip(sub), detail)
		default:
			id.Detail = detail
		}
	}
	if key != "" {
		fp := r.Fingerprint(key)
		id.Actor = chain.Actor{Type: chain.ActorAPIKey, ID: fp, IPAddress: ip}
		id.Method, id.Name = "api_key", r.opts.Names[fp]
		return id
	}
	id.Actor = chain.Actor{Type: chain.ActorUser, ID: "anonymous", IPAddress: ip}
	id.Method = "anonymous"
	return id
}

// hopByHop reports whether name is listed in h's Connection header.
func hopByHop(h http.Header, name string) bool {
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

func clip(s string) string { return chain.CleanText(s, 255) }

// bearer extracts the token of "Bearer <token>" (Flowker also accepts a bare token).
func bearer(h string) string {
	h = strings.TrimSpace(h)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if strings.Count(h, ".") == 2 && !strings.ContainsAny(h, " ") {
		return h
	}
	return ""
}

type flowkerClaims struct {
	jwt.Claims
	Type  string `json:"type"`
	Owner string `json:"owner"`
}

var algs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512}

// jwtSubject returns the subject of tok and whether its signature and claims were verified.
func (r *Resolver) jwtSubject(ctx context.Context, tok string) (sub string, verified bool, detail string) {
	parsed, err := jwt.ParseSigned(tok, algs)
	if err != nil {
		return "", false, "bearer token is not a JWT"
	}
	var c flowkerClaims
	if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
		return "", false, "unreadable JWT claims"
	}
	sub = c.Subject
	if c.Type == "normal-user" && c.Owner != "" {
		sub = c.Owner + "/" + c.Subject
	}
	if sub == "" {
		return "", false, "JWT has no subject"
	}
	key, ok := r.verificationKey(ctx, parsed)
	if !ok {
		if r.hmacKey == nil && r.keys == nil && r.opts.JWT.JWKSURL == "" {
			return sub, false, "no JWT verification key configured"
		}
		return sub, false, "no key matches the JWT"
	}
	var vc flowkerClaims
	if err := parsed.Claims(key, &vc); err != nil {
		return sub, false, "JWT signature invalid"
	}
	exp := jwt.Expected{Issuer: r.opts.JWT.Issuer, Time: r.opts.Now()}
	if r.opts.JWT.Audience != "" {
		exp.AnyAudience = jwt.Audience{r.opts.JWT.Audience}
	}
	if err := vc.ValidateWithLeeway(exp, time.Minute); err != nil {
		return sub, false, "JWT claims rejected: " + err.Error()
	}
	return sub, true, ""
}

func (r *Resolver) verificationKey(ctx context.Context, t *jwt.JSONWebToken) (any, bool) {
	if r.hmacKey != nil {
		return r.hmacKey, true
	}
	kid := ""
	if len(t.Headers) > 0 {
		kid = t.Headers[0].KeyID
	}
	if k, ok := r.lookup(kid); ok {
		return k, true
	}
	if r.opts.JWT.JWKSURL != "" {
		// Unknown key id: the issuer may have rotated keys. One request refetches, at most once
		// a minute whether the last attempt worked or not (tokens with made-up key ids must not
		// turn into a stream of fetches), and waits at most 2 s for it; the others go on
		// unverified.
		r.mu.Lock()
		claim := time.Since(r.fetched) > time.Minute && time.Since(r.attempted) > time.Minute
		if claim {
			r.attempted = time.Now()
		}
		r.mu.Unlock()
		if claim {
			fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := r.fetchJWKS(fctx)
			cancel()
			if err != nil {
				r.log.Warn("JWKS refresh failed", "err", err)
			}
			return r.lookup(kid)
		}
	}
	return nil, false
}

func (r *Resolver) lookup(kid string) (any, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.keys == nil {
		return nil, false
	}
	if kid != "" {
		if ks := r.keys.Key(kid); len(ks) > 0 {
			return ks[0].Key, true
		}
		return nil, false
	}
	if len(r.keys.Keys) == 1 {
		return r.keys.Keys[0].Key, true
	}
	return nil, false
}

func (r *Resolver) fetchJWKS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.opts.JWT.JWKSURL, nil)
	if err != nil {
		return err
	}
	resp, err := r.opts.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("decoding JWKS: %w", err)
	}
	r.mu.Lock()
	r.keys, r.fetched = &set, time.Now()
	r.mu.Unlock()
	return nil
}

// RefreshLoop refetches the JWKS periodically until ctx ends (no-op without a JWKS URL).
func (r *Resolver) RefreshLoop(ctx context.Context) {
	if r.opts.JWT.JWKSURL == "" {
		return
	}
	t := time.NewTicker(r.opts.JWT.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.fetchJWKS(ctx); err != nil {
				r.log.Warn("JWKS refresh failed", "err", err)
			}
		}
	}
}

func loadKeyFile(path string) (*jose.JSONWebKeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading JWT public key: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing JWT public key %s: %w", path, err)
		}
		return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub}}}, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err == nil && len(set.Keys) > 0 {
		return &set, nil
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("JWT public key %s is neither PEM nor JWK/JWKS", path)
	}
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}}, nil
}
