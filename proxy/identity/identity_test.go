package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flowker-audit/flowker-audit/chain"
)

var fpKey = []byte("0123456789abcdef0123456789abcdef")

func resolver(t *testing.T, mut ...func(*Options)) *Resolver {
	t.Helper()
	o := Options{FingerprintKey: fpKey, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}, TrustedHeader: "X-Forwarded-User"}
	for _, f := range mut {
		f(&o)
	}
	r, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func req(peer string, hdr map[string]string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/workflows", nil)
	r.RemoteAddr = peer
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func TestClientIP(t *testing.T) {
	r := resolver(t)
	tests := []struct {
		name, peer, xff, want string
		trusted               bool
	}{
		{"untrusted peer, spoofed XFF ignored", "203.0.113.9:5555", "1.2.3.4", "203.0.113.9", false},
		{"trusted peer, one hop", "10.1.2.3:80", "198.51.100.7", "198.51.100.7", true},
		{"trusted peer, client-written hops on the left ignored", "10.1.2.3:80", "6.6.6.6, 198.51.100.7", "198.51.100.7", true},
		{"trusted chain", "10.1.2.3:80", "198.51.100.7, 10.9.9.9", "198.51.100.7", true},
		{"all hops trusted", "10.1.2.3:80", "10.2.2.2", "10.2.2.2", true},
		{"garbage hop stops the walk", "10.1.2.3:80", "198.51.100.7, not-an-ip", "10.1.2.3", true},
		{"no XFF from trusted peer", "192.0.2.1:1", "", "192.0.2.1", true},
		{"IPv6 peer", "[2001:db8::1]:443", "1.1.1.1", "2001:db8::1", false},
		{"IPv4-mapped peer", "[::ffff:10.0.0.5]:80", "198.51.100.8", "198.51.100.8", true},
		{"hop with port", "10.1.2.3:80", "198.51.100.7:4444", "198.51.100.7", true},
	}
	for _, tc := range tests {
		h := map[string]string{}
		if tc.xff != "" {
			h["X-Forwarded-For"] = tc.xff
		}
		ip, _, _, trusted := r.ClientIP(req(tc.peer, h))
		if ip != tc.want || trusted != tc.trusted {
			t.Errorf("%s: ip %q trusted %v, want %q %v", tc.name, ip, trusted, tc.want, tc.trusted)
		}
	}
}

func TestAPIKeyFingerprint(t *testing.T) {
	fp := Fingerprint(fpKey, "super-secret-key")
	r := resolver(t, func(o *Options) { o.Names = map[string]string{fp: "ci-bot"} })
	id := r.Resolve(req("203.0.113.9:1", map[string]string{"X-API-Key": "super-secret-key"}))
	if id.Actor.Type != chain.ActorAPIKey || id.Actor.ID != fp || id.Name != "ci-bot" || id.Actor.IPAddress != "203.0.113.9" {
		t.Fatalf("identity: %+v", id)
	}
	if len(fp) != 16 || fp[:4] != "key:" || fp == Fingerprint([]byte("another-key-0123456789"), "super-secret-key") {
		t.Fatalf("fingerprint %q must be keyed and 12 hex digits", fp)
	}
}

func TestTrustedHeaderOnlyFromTrustedProxies(t *testing.T) {
	r := resolver(t)
	id := r.Resolve(req("203.0.113.9:1", map[string]string{"X-Forwarded-User": "mallory", "X-API-Key": "k-12345678"}))
	if id.Method != "api_key" {
		t.Fatalf("spoofed identity header was trusted: %+v", id)
	}
	id = r.Resolve(req("10.0.0.7:1", map[string]string{"X-Forwarded-User": "alice", "X-Forwarded-For": "198.51.100.1"}))
	if id.Method != "trusted_header" || id.Actor.ID != "alice" || !id.Verified || id.Actor.IPAddress != "198.51.100.1" {
		t.Fatalf("trusted header: %+v", id)
	}
}

func TestAnonymous(t *testing.T) {
	id := resolver(t).Resolve(req("203.0.113.9:1", nil))
	if id.Actor != (chain.Actor{Type: chain.ActorUser, ID: "anonymous", IPAddress: "203.0.113.9"}) {
		t.Fatalf("anonymous: %+v", id)
	}
}

func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWT(t *testing.T) {
	now := time.Now()
	claims := map[string]any{"sub": "u-42", "owner": "acme", "type": "normal-user", "iss": "https://idp", "exp": now.Add(time.Hour).Unix()}
	hs := []byte("hmac-secret-hmac-secret-hmac-secret")

	// Unverified (nothing configured): the subject is read, verified=false.
	r := resolver(t)
	id := r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + sign(t, hs, jose.HS256, "", claims)}))
	if id.Actor.ID != "acme/u-42" || id.Verified || id.Method != "jwt" {
		t.Fatalf("unverified: %+v", id)
	}
	// Bare token (Flowker accepts it too).
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": sign(t, hs, jose.HS256, "", claims)}))
	if id.Actor.ID != "acme/u-42" {
		t.Fatalf("bare token: %+v", id)
	}

	// HMAC verification.
	r = resolver(t, func(o *Options) { o.JWT.HMACSecret = string(hs); o.JWT.Issuer = "https://idp" })
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + sign(t, hs, jose.HS256, "", claims)}))
	if !id.Verified {
		t.Fatalf("HMAC-verified token: %+v", id)
	}
	forged := sign(t, []byte("some-other-secret-some-other-secret"), jose.HS256, "", claims)
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + forged}))
	if id.Verified || id.Detail == "" || id.Actor.ID != "acme/u-42" {
		t.Fatalf("forged token must be recorded as unverified: %+v", id)
	}
	expired := map[string]any{"sub": "svc", "iss": "https://idp", "exp": now.Add(-time.Hour).Unix()}
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + sign(t, hs, jose.HS256, "", expired)}))
	if id.Verified || id.Actor.ID != "svc" {
		t.Fatalf("expired token: %+v", id)
	}

	// JWKS with key rotation.
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	current := []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches++
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: current})
	}))
	defer srv.Close()
	r = resolver(t, func(o *Options) { o.JWT.JWKSURL = srv.URL })
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + sign(t, k1, jose.RS256, "k1", claims)}))
	if !id.Verified {
		t.Fatalf("JWKS-verified token: %+v", id)
	}
	current = append(current, jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "RS256", Use: "sig"})
	r.mu.Lock()
	r.fetched, r.attempted = time.Time{}, time.Time{} // allow an immediate refetch for the unknown kid
	r.mu.Unlock()
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + sign(t, k2, jose.RS256, "k2", claims)}))
	if !id.Verified || fetches != 2 {
		t.Fatalf("rotated key: verified=%v fetches=%d", id.Verified, fetches)
	}

	// Not a JWT at all: falls through to the API key.
	id = r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer opaque", "X-API-Key": "k-12345678"}))
	if id.Method != "api_key" {
		t.Fatalf("opaque bearer: %+v", id)
	}
}

// A caller with a valid API key cannot make the event name someone else by adding a token:
// an unverified JWT never overrides the key, and headers named in Connection (which the proxy
// removes before forwarding, so Flowker never sees them) are ignored.
func TestTokenBesideAnAPIKeyDoesNotReplaceIt(t *testing.T) {
	claims := map[string]any{"sub": "ceo", "iss": "https://idp", "exp": time.Now().Add(time.Hour).Unix()}
	hs := []byte("hmac-secret-hmac-secret-hmac-secret")
	forged := sign(t, []byte("some-other-secret-some-other-secret"), jose.HS256, "", claims)
	for name, tc := range map[string]struct {
		mut  []func(*Options)
		hdr  map[string]string
		want chain.Actor
		note string
	}{
		"unverifiable token beside a key": {nil,
			map[string]string{"X-API-Key": "k-1", "Authorization": "Bearer " + forged},
			chain.Actor{Type: chain.ActorAPIKey}, `unverified JWT subject "ceo" not used`},
		"forged token beside a key, verification on": {[]func(*Options){func(o *Options) { o.JWT.HMACSecret = string(hs) }},
			map[string]string{"X-API-Key": "k-1", "Authorization": "Bearer " + forged},
			chain.Actor{Type: chain.ActorAPIKey}, "JWT signature invalid"},
		"token named in Connection": {nil,
			map[string]string{"X-API-Key": "k-1", "Authorization": "Bearer " + forged, "Connection": "keep-alive, Authorization"},
			chain.Actor{Type: chain.ActorAPIKey}, ""},
		"key named in Connection": {nil,
			map[string]string{"X-API-Key": "k-1", "Connection": "x-api-key"},
			chain.Actor{Type: chain.ActorUser, ID: "anonymous"}, ""},
		"trusted header named in Connection": {nil,
			map[string]string{"X-Forwarded-User": "alice", "Connection": "X-Forwarded-User"},
			chain.Actor{Type: chain.ActorUser, ID: "anonymous"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			id := resolver(t, tc.mut...).Resolve(req("10.1.2.3:1", tc.hdr))
			if id.Actor.Type != tc.want.Type || (tc.want.ID != "" && id.Actor.ID != tc.want.ID) || id.Verified {
				t.Fatalf("got %+v, want actor %+v", id, tc.want)
			}
			if tc.want.Type == chain.ActorAPIKey && id.Actor.ID != resolver(t).Fingerprint("k-1") {
				t.Fatalf("actor %q is not the key's fingerprint", id.Actor.ID)
			}
			if !strings.Contains(id.Detail, tc.note) {
				t.Fatalf("detail %q, want it to mention %q", id.Detail, tc.note)
			}
		})
	}
}

// Tokens with made-up key ids while the JWKS endpoint fails do not turn into one fetch each.
func TestUnknownKeyIDsFetchTheJWKSAtMostOncePerMinute(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	r := resolver(t, func(o *Options) { o.JWT.JWKSURL = srv.URL })
	start := fetches.Load() // New tried once at start
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	claims := map[string]any{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok := sign(t, key, jose.RS256, fmt.Sprintf("kid-%d", i), claims)
			if id := r.Resolve(req("203.0.113.9:1", map[string]string{"Authorization": "Bearer " + tok})); id.Verified {
				t.Errorf("verified without a key: %+v", id)
			}
		}(i)
	}
	wg.Wait()
	if n := fetches.Load() - start; n > 1 {
		t.Fatalf("%d JWKS fetches for 20 tokens with unknown key ids, want at most 1", n)
	}
}

func TestTrustedPeer(t *testing.T) {
	r := resolver(t) // trusts 10.0.0.0/8 and 192.0.2.1
	for addr, want := range map[string]bool{
		"10.1.2.3:5000": true, "[::ffff:10.1.2.3]:5000": true, "192.0.2.1:1": true,
		"192.0.2.2:1": false, "203.0.113.9:1": false, "garbage": false, "": false,
	} {
		if got := r.TrustedPeer(addr); got != want {
			t.Errorf("TrustedPeer(%q) = %v, want %v", addr, got, want)
		}
		req := req(addr, nil)
		if _, _, _, trusted := r.ClientIP(req); addr != "garbage" && addr != "" && trusted != want {
			t.Errorf("ClientIP disagrees for %q", addr)
		}
	}
}
