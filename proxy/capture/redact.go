package capture

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// DefaultSecretKeys mark a secret wherever they appear inside a key (case-insensitive, matched
// against the key with '-', '_', '.' and spaces removed: "X-Auth-Key" is "xauthkey").
var DefaultSecretKeys = []string{
	"password", "passwd", "passphrase", "passcode", "secret", "token", "apikey", "accesskey", "privatekey",
	"authorization", "credential", "cookie", "signature", "sessionid", "bearer", "jwt",
	"connectionstring", "connstr", "dsn", "xauth", "authkey", "otp",
}

// DefaultSecretNames are short names redacted only when the whole (normalised) key is one of
// them: as substrings they would hide ordinary fields ("pass" in "bypass", "pin" in "shipping").
var DefaultSecretNames = []string{"pass", "pwd", "pw", "key", "auth", "sig", "sign", "pin", "creds", "salt", "nonce"}

// DefaultKeptKeyEnds are keys that end in "key" but name no secret: identifiers and public
// material (an idempotency key is echoed in responses; a public key is public), and words that
// merely end in those letters. Every other key ending in "key" (authKey, encryption_key,
// signing_key, masterKey, X-Auth-Key, ...) is redacted.
var DefaultKeptKeyEnds = []string{
	"idempotencykey", "publickey", "primarykey", "foreignkey", "sortkey", "partitionkey", "routingkey",
	"cachekey", "objectkey", "messagekey", "groupkey", "lookupkey", "dedupkey", "dedupekey",
	"deduplicationkey", "keykey", "monkey", "donkey", "turkey", "hockey", "jockey", "whiskey", "hotkey",
}

// secretShapes match values that are secrets whatever their key is called: URL credentials
// (scheme://user:password@ or a token as user), bearer and basic credentials, JWTs, PEM private
// keys, and well-known cloud and SaaS key formats (AWS access key ids, GitHub, GitLab, Slack,
// Google API, Stripe, OpenAI/Anthropic-style sk- keys, Azure storage account keys and SAS
// signatures). A string value containing one is replaced whole.
var secretShapes = regexp.MustCompile(strings.Join([]string{
	`[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s@]+@`, // URL userinfo
	`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}`,
	`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`, // JWT (header.payload.signature)
	`-----BEGIN[A-Z ]* PRIVATE KEY-----`,
	`\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b`, // AWS access key ids
	`\bgh[pousr]_[A-Za-z0-9]{30,}`, `\bgithub_pat_[A-Za-z0-9_]{20,}`, `\bglpat-[A-Za-z0-9_-]{20,}`,
	`\bxox[abposr]-[A-Za-z0-9-]{10,}`,
	`\bAIza[0-9A-Za-z_-]{35}`,
	`\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}`,
	`\bsk-[A-Za-z0-9_-]{20,}`,
	`(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s]{16,}`,
}, "|"))

// shapeHints are substrings one of which every secret shape contains: values without any are
// not run through the regular expression.
var shapeHints = func() [][]byte {
	var out [][]byte
	for _, h := range []string{"://", "earer", "EARER", "asic", "ASIC", "eyJ", "-----BEGIN", "AKIA", "ASIA", "AGPA", "AIDA",
		"AROA", "ANPA", "ANVA", "AIPA", "AIza", "gh", "github_pat_", "glpat-", "xox", "k_", "sk-", "=", "BEARER", "BASIC"} {
		out = append(out, []byte(h))
	}
	return out
}()

// basicCredentials finds HTTP Basic credentials: "Basic " and base64 that decodes to user:password
// (checked in basicSecret, so "basic settlement" is not one).
var basicCredentials = regexp.MustCompile(`(?i)\bbasic\s+([A-Za-z0-9+/]{4,}={0,2})`)

func basicSecret(b []byte) bool {
	for _, m := range basicCredentials.FindAllSubmatch(b, 4) {
		if dec, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil && bytes.IndexByte(dec, ':') > 0 {
			return true
		}
	}
	return false
}

// minShape is the length of the shortest secret shape ("a://b@").
const minShape = 6

// SecretValue reports whether a string has the shape of a secret.
func SecretValue(s string) bool {
	return secretBytes([]byte(s))
}

// hintsByFirst indexes shapeHints by their first byte: one pass over a value finds whether it
// contains any.
var hintsByFirst = func() (t [256][][]byte) {
	for _, h := range shapeHints {
		t[h[0]] = append(t[h[0]], h)
	}
	return t
}()

func hasHint(b []byte) bool {
	for i, c := range b {
		for _, h := range hintsByFirst[c] {
			if bytes.HasPrefix(b[i:], h) {
				return true
			}
		}
	}
	return false
}

// secretBytes is SecretValue for bytes (no copy).
func secretBytes(b []byte) bool {
	return len(b) >= minShape && hasHint(b) && (secretShapes.Match(b) || basicSecret(b))
}

// Text returns s, or Redacted when it has the shape of a secret (for values outside bodies:
// user agents, request ids, names).
func Text(s string) string {
	if SecretValue(s) {
		return Redacted
	}
	return s
}

// Redactor decides what to hide. It is immutable and safe for concurrent use.
type Redactor struct {
	keys  [][]byte         // substrings of a normalised key that mark a secret
	names []string         // whole normalised keys that mark a secret
	kept  []string         // normalised key endings that are not secrets though they end in "key"
	extra []*regexp.Regexp // configured key patterns
	keep  []*regexp.Regexp // configured keys never redacted by name
	paths [][]string       // dot paths, lower-cased, "*" = any key or index
	// verdicts remembers SecretKey's answer for the keys seen (shared by the copies With makes:
	// the answer does not depend on paths). Bodies repeat the same few keys, and the checks cost
	// two dozen substring searches per key.
	verdicts *keyVerdicts
}

// keyVerdicts is a bounded cache of SecretKey answers: once full it stops remembering, so keys
// sent by a client cannot grow it without bound.
type keyVerdicts struct {
	mu sync.RWMutex
	m  map[string]bool
}

const (
	maxCachedKeys   = 4096
	maxCachedKeyLen = 64
)

func (v *keyVerdicts) get(key string) (secret, ok bool) {
	v.mu.RLock()
	secret, ok = v.m[key]
	v.mu.RUnlock()
	return secret, ok
}

func (v *keyVerdicts) put(key string, secret bool) {
	v.mu.Lock()
	if len(v.m) < maxCachedKeys {
		v.m[strings.Clone(key)] = secret // key may view a request's buffer
	}
	v.mu.Unlock()
}

// NewRedactor builds a redactor from the default secret keys plus configured key patterns
// (case-insensitive regular expressions) and dot paths. keep are case-insensitive regular
// expressions of keys (matched whole) that look secret but are not: they are not redacted by
// name (value shapes and paths still apply).
func NewRedactor(keyPatterns, paths []string, keep ...string) (*Redactor, error) {
	r := &Redactor{names: DefaultSecretNames, kept: DefaultKeptKeyEnds, verdicts: &keyVerdicts{m: map[string]bool{}}}
	for _, k := range DefaultSecretKeys {
		r.keys = append(r.keys, []byte(k))
	}
	for _, p := range keyPatterns {
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			return nil, fmt.Errorf("redact key pattern %q: %w", p, err)
		}
		r.extra = append(r.extra, re)
	}
	for _, p := range keep {
		re, err := regexp.Compile("(?i)^(?:" + p + ")$")
		if err != nil {
			return nil, fmt.Errorf("keep key pattern %q: %w", p, err)
		}
		r.keep = append(r.keep, re)
	}
	for _, p := range paths {
		r.paths = append(r.paths, strings.Split(strings.ToLower(p), "."))
	}
	return r, nil
}

// With returns a redactor that also redacts paths (for a rule's own paths).
func (r *Redactor) With(paths []string) *Redactor {
	if len(paths) == 0 {
		return r
	}
	c := *r
	c.paths = append([][]string{}, r.paths...)
	for _, p := range paths {
		c.paths = append(c.paths, strings.Split(strings.ToLower(p), "."))
	}
	return &c
}

// SecretKey reports whether a key or parameter name looks like it holds a secret.
func (r *Redactor) SecretKey(key string) bool {
	if r.verdicts == nil || len(key) > maxCachedKeyLen {
		return r.secretKey(key)
	}
	if secret, ok := r.verdicts.get(key); ok {
		return secret
	}
	secret := r.secretKey(key)
	r.verdicts.put(key, secret)
	return secret
}

func (r *Redactor) secretKey(key string) bool {
	for _, re := range r.keep {
		if re.MatchString(key) {
			return false
		}
	}
	var buf [64]byte
	n := normalizeKey(buf[:0], key)
	for _, k := range r.keys {
		if bytes.Contains(n, k) {
			return true
		}
	}
	for _, k := range r.names {
		if string(n) == k {
			return true
		}
	}
	if bytes.HasSuffix(n, []byte("key")) {
		kept := false
		for _, k := range r.kept {
			if bytes.HasSuffix(n, []byte(k)) {
				kept = true
				break
			}
		}
		if !kept {
			return true
		}
	}
	for _, re := range r.extra {
		if re.MatchString(key) {
			return true
		}
	}
	return false
}

// normalizeKey appends key lower-cased without '-', '_', '.' and spaces ("X-API-Key" ->
// "xapikey"), the form DefaultSecretKeys are written in.
func normalizeKey(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func (r *Redactor) pathRedacted(path []string) bool {
	for _, p := range r.paths {
		if len(p) != len(path) {
			continue
		}
		ok := true
		for i := range p {
			if p[i] != "*" && p[i] != strings.ToLower(path[i]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Query returns the query parameters with secret-looking names or values redacted, or nil when
// empty.
func (r *Redactor) Query(rawQuery string) map[string][]string {
	if rawQuery == "" {
		return nil
	}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil && len(vals) == 0 {
		return map[string][]string{"_unparsed": {fmt.Sprintf("%d bytes", len(rawQuery))}}
	}
	out := make(map[string][]string, len(vals))
	for k, vs := range vals {
		k = sanitize(k)
		if r.SecretKey(k) || SecretValue(k) {
			if SecretValue(k) {
				k = Redacted
			}
			out[k] = []string{Redacted}
			continue
		}
		clean := make([]string, len(vs))
		for i, v := range vs {
			clean[i] = Text(sanitize(v))
		}
		out[k] = clean
	}
	return out
}
