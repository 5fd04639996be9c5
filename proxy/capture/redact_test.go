package capture

import (
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestSecretKeysBroadened(t *testing.T) {
	r, err := NewRedactor(nil, nil, "tokenizer_mode", "signatureAlgorithm")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		// Issue 14, item 3: stored in clear before.
		"authKey": true, "encryption_key": true, "signing_key": true, "passcode": true, "X-Auth-Key": true,
		"x-auth-user": true, "masterKey": true, "clientSecret": true, "refresh_token": true, "otp_code": true,
		"salt": true, "privateKeyPem": true,
		// Identifiers and public material that merely end in "key".
		"idempotencyKey": false, "publicKey": false, "partition_key": false, "monkey": false, "keyword": false,
		"name": false, "database_url": false, "author": false, "shipping": false,
		// The keep-list.
		"tokenizer_mode": false, "TOKENIZER_MODE": false, "signatureAlgorithm": false, "signature": true,
	} {
		if got := r.SecretKey(key); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestSecretShapes(t *testing.T) {
	for v, want := range map[string]bool{
		"https://u:secret@host/db":                     true,
		"postgres://admin:hunter2@db:5432/x":           true,
		"https://ghp_abc@github.com/x":                 true,
		"Bearer abcdefghijklmnop":                      true,
		"bearer of bad news":                           false,
		"basic settlement":                             false,
		"Basic plan for ACME":                          false,
		"basic dXNlcjpwYXNzd29yZA==":                   true,
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_ab": true,
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE":        true,
		"-----BEGIN PRIVATE KEY-----":                  true,
		"AKIAIOSFODNN7EXAMPLE":                         true,
		"ghp_" + strings.Repeat("a", 36):               true,
		"xoxb-123456789012-abcdefghij":                 true,
		"AIza" + strings.Repeat("b", 35):               true,
		"sk_live_" + strings.Repeat("c", 24):           true,
		"sk-" + strings.Repeat("d", 40):                true,
		"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + strings.Repeat("e", 40): true,
		"https://example.com/path":             false,
		"-----BEGIN PUBLIC KEY-----":           false,
		"my workflow":                          false,
		"a basic plan":                         false,
		"mailto:someone@example.com":           false,
		"c5160020-5d68-4a05-b984-cef31de6428a": false,
	} {
		if got := SecretValue(v); got != want {
			t.Errorf("SecretValue(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestRenderRedactsByShape: a secret is redacted by its shape whatever its key, escapes included.
func TestRenderRedactsByShape(t *testing.T) {
	r, _ := NewRedactor(nil, nil)
	body := `{"name":"wf","nodes":[{"data":{"url":"https://u:s3cr3t@host/x","headers":{"X-Auth-Key":"k-1"},"note":"\u0065yJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}}],"database_url":"postgres://a:b@db/x"}`
	out, err := r.Render([]byte(body), true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"s3cr3t", "k-1", "eyJ", "c2ln", "a:b"} {
		if strings.Contains(string(out.JSON), leak) {
			t.Errorf("%q leaked: %s", leak, out.JSON)
		}
	}
	if !out.Redacted || !strings.Contains(string(out.JSON), `"name":"wf"`) {
		t.Errorf("rendering: %s (redacted %v)", out.JSON, out.Redacted)
	}
}

func TestQueryRedactsNamesAndShapes(t *testing.T) {
	r, _ := NewRedactor(nil, nil)
	q := r.Query("authKey=a1&passcode=1234&next=https://u:p@h/&page=2&jwt_like=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
	for k, want := range map[string]string{"authKey": Redacted, "passcode": Redacted, "next": Redacted, "page": "2", "jwt_like": Redacted} {
		if got := q[k]; len(got) != 1 || got[0] != want {
			t.Errorf("query %s = %v, want %s", k, got, want)
		}
	}
}

// SecretKey remembers its answers: the remembered answer is the computed one (asked twice, and
// through a copy made by With), a key that views a buffer later overwritten is remembered by
// value, and the memory is bounded however many keys clients send.
func TestSecretKeyVerdictsAreRemembered(t *testing.T) {
	r, err := NewRedactor([]string{"^internal_"}, nil, "tokenizer_mode")
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"password", "name", "X-Auth-Key", "idempotencyKey", "internal_id", "tokenizer_mode", "monkey", "clientSecret"}
	for round := range 2 {
		for _, k := range keys {
			for _, red := range []*Redactor{r, r.With([]string{"a.b"})} {
				if got, want := red.SecretKey(k), red.secretKey(k); got != want {
					t.Errorf("round %d: SecretKey(%q) = %v, computed %v", round, k, got, want)
				}
			}
		}
	}
	buf := []byte("apiToken")
	view := unsafe.String(&buf[0], len(buf))
	if !r.SecretKey(view) {
		t.Fatal("apiToken is a secret key")
	}
	copy(buf, "username")
	if r.SecretKey("apiToken") != true || r.SecretKey("username") != false {
		t.Fatal("a remembered key changed with the buffer it was read from")
	}
	for i := range 3 * maxCachedKeys {
		r.SecretKey("k" + strconv.Itoa(i))
	}
	if n := len(r.verdicts.m); n > maxCachedKeys {
		t.Fatalf("%d keys remembered, bound %d", n, maxCachedKeys)
	}
	long := strings.Repeat("x", maxCachedKeyLen) + "password"
	if !r.SecretKey(long) {
		t.Fatal("a long key is still checked")
	}
}
