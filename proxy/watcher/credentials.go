package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Credentials authorize the watcher's polls with a token that can change: Apply sets the
// request's headers, Invalidate is called when Flowker answered 401, so that the next Apply
// gets a new token (the poll is then retried once).
type Credentials interface {
	Apply(ctx context.Context, req *http.Request) error
	Invalidate()
}

// OAuth2Options configure OAuth2ClientCredentials.
type OAuth2Options struct {
	TokenURL string
	ClientID string
	// ClientSecret, or ClientSecretFile read at every token request (a rotated secret is used
	// from the next request on).
	ClientSecret     string
	ClientSecretFile string
	Scopes           []string
	// RefreshBefore renews a token this long before it expires, capped at a quarter of its
	// lifetime (default 1 min).
	RefreshBefore time.Duration
	// Client makes the token requests (default: 10 s timeout).
	Client *http.Client
	Now    func() time.Time
}

// OAuth2ClientCredentials gets bearer tokens with the OAuth2 client credentials grant
// (golang.org/x/oauth2/clientcredentials) and renews them before they expire.
type OAuth2ClientCredentials struct {
	o OAuth2Options

	mu        sync.Mutex
	tok       *oauth2.Token
	refreshAt time.Time
}

// NewOAuth2ClientCredentials returns credentials that fetch their first token on first use.
func NewOAuth2ClientCredentials(o OAuth2Options) *OAuth2ClientCredentials {
	if o.RefreshBefore <= 0 {
		o.RefreshBefore = time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OAuth2ClientCredentials{o: o}
}

// Apply sets Authorization: Bearer with a valid token, fetching one when there is none or the
// current one is due for renewal.
func (c *OAuth2ClientCredentials) Apply(ctx context.Context, req *http.Request) error {
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	tok.SetAuthHeader(req)
	return nil
}

// Invalidate drops the current token: Flowker refused it.
func (c *OAuth2ClientCredentials) Invalidate() {
	c.mu.Lock()
	c.tok = nil
	c.mu.Unlock()
}

func (c *OAuth2ClientCredentials) token(ctx context.Context) (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.o.Now()
	if c.tok != nil && (c.refreshAt.IsZero() || now.Before(c.refreshAt)) {
		return c.tok, nil
	}
	secret := c.o.ClientSecret
	if c.o.ClientSecretFile != "" {
		b, err := os.ReadFile(c.o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2 client secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	cc := clientcredentials.Config{ClientID: c.o.ClientID, ClientSecret: secret, TokenURL: c.o.TokenURL, Scopes: c.o.Scopes}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, c.o.Client))
	if err != nil {
		return nil, fmt.Errorf("oauth2 token from %s: %w", c.o.TokenURL, err)
	}
	c.tok, c.refreshAt = tok, time.Time{}
	if !tok.Expiry.IsZero() {
		life := tok.Expiry.Sub(now)
		c.refreshAt = tok.Expiry.Add(-min(c.o.RefreshBefore, life/4))
	}
	return tok, nil
}

// TokenFile sends the bearer token held in a file (a projected Kubernetes service-account token,
// which the kubelet rewrites before it expires). The file is re-read when its modification time
// or size changes, and after a 401.
type TokenFile struct {
	path string

	mu    sync.Mutex
	token string
	mod   time.Time
	size  int64
	stale bool
}

// NewTokenFile returns credentials reading path.
func NewTokenFile(path string) *TokenFile { return &TokenFile{path: path} }

// Apply sets Authorization: Bearer with the file's token.
func (f *TokenFile) Apply(_ context.Context, req *http.Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("watcher token file: %w", err)
	}
	if f.token == "" || f.stale || !st.ModTime().Equal(f.mod) || st.Size() != f.size {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("watcher token file: %w", err)
		}
		tok := string(bytes.TrimSpace(b))
		if tok == "" {
			return errors.New("watcher token file " + f.path + " is empty")
		}
		f.token, f.mod, f.size, f.stale = tok, st.ModTime(), st.Size(), false
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	return nil
}

// Invalidate makes the next Apply re-read the file even if it looks unchanged.
func (f *TokenFile) Invalidate() {
	f.mu.Lock()
	f.stale = true
	f.mu.Unlock()
}
