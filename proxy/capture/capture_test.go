package capture

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func redactor(t testing.TB, paths ...string) *Redactor {
	t.Helper()
	r, err := NewRedactor([]string{`^x-internal-`}, paths)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRender(t *testing.T) {
	r := redactor(t, "config.*", "nodes.*.data.endpoint")
	tests := []struct {
		name     string
		in       string
		complete bool
		budget   int
		want     string
		trunc    bool
		invalid  bool
	}{
		{"plain", `{"name": "w", "n": 1.50, "ok": true, "z": null}`, true, 1 << 20, `{"name":"w","n":1.50,"ok":true,"z":null}`, false, false},
		{"secret keys", `{"password":"p","apiKey":"k","X-API-Key":"k2","client_secret":{"a":1},"name":"ok","Authorization":"Bearer x","verify_token":"t"}`, true, 1 << 20,
			`{"password":"[REDACTED]","apiKey":"[REDACTED]","X-API-Key":"[REDACTED]","client_secret":"[REDACTED]","name":"ok","Authorization":"[REDACTED]","verify_token":"[REDACTED]"}`, false, false},
		{"configured key pattern", `{"x-internal-ref":"v","x-other":"w"}`, true, 1 << 20, `{"x-internal-ref":"[REDACTED]","x-other":"w"}`, false, false},
		{"path wildcard", `{"name":"pc","config":{"base_url":"http://x","api_key":"k","nested":{"a":[1,2]}},"providerId":"tracer"}`, true, 1 << 20,
			`{"name":"pc","config":{"base_url":"[REDACTED]","api_key":"[REDACTED]","nested":"[REDACTED]"},"providerId":"tracer"}`, false, false},
		{"path through arrays", `{"nodes":[{"id":"a","data":{"endpoint":"e","x":1}},{"id":"b","data":{"endpoint":"f"}}]}`, true, 1 << 20,
			`{"nodes":[{"id":"a","data":{"endpoint":"[REDACTED]","x":1}},{"id":"b","data":{"endpoint":"[REDACTED]"}}]}`, false, false},
		{"top-level array", `[{"token":"t"},2,"s"]`, true, 1 << 20, `[{"token":"[REDACTED]"},2,"s"]`, false, false},
		{"scalar", `"just a string"`, true, 1 << 20, `"just a string"`, false, false},
		{"numbers keep their text", `{"a":1e400,"b":-0.0,"c":123456789012345678901234567890}`, true, 1 << 20, `{"a":1e400,"b":-0.0,"c":123456789012345678901234567890}`, false, false},
		{"NUL and invalid UTF-8 sanitised", "{\"s\":\"a\\u0000b\",\"t\":\"\xff\"}", true, 1 << 20, `{"s":"a` + "\uFFFD" + `b","t":"` + "\uFFFD" + `"}`, false, false},
		{"output budget", `{"a":"` + strings.Repeat("x", 50) + `","b":"` + strings.Repeat("y", 50) + `"}`, true, 80, `{"a":"` + strings.Repeat("x", 50) + `"}`, true, false},
		{"input prefix cut mid-string", `{"a":"x","b":{"c":"unfinis`, false, 1 << 20, `{"a":"x","b":{}}`, true, false},
		{"input prefix cut after key", `{"a":[1,2,{"secret":"s`, false, 1 << 20, `{"a":[1,2,{"secret":"[REDACTED]"}]}`, true, false},
		{"malformed mid-way", `{"description": "half`, true, 1 << 20, `{}`, false, true},
		{"garbage after value", `{"a":1} trailing`, true, 1 << 20, `{"a":1}`, false, true},
		{"bad escape", `{"name":"bad \q escape","secret":"s"}`, true, 1 << 20, `{}`, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Render([]byte(tc.in), tc.complete, tc.budget)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if string(got.JSON) != tc.want || got.Truncated != tc.trunc || got.Invalid != tc.invalid {
				t.Fatalf("got %s (truncated=%v invalid=%v)\nwant %s (truncated=%v invalid=%v)", got.JSON, got.Truncated, got.Invalid, tc.want, tc.trunc, tc.invalid)
			}
			if !json.Valid(got.JSON) {
				t.Fatalf("output is not valid JSON: %s", got.JSON)
			}
		})
	}
}

func TestRenderNotJSON(t *testing.T) {
	r := redactor(t)
	for _, in := range []string{"", "   ", "name=x&password=y", "<xml/>", "}"} {
		if _, err := r.Render([]byte(in), true, 1024); !errors.Is(err, ErrNotJSON) {
			t.Errorf("Render(%q): %v, want ErrNotJSON", in, err)
		}
	}
}

func TestLooksJSON(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     bool
	}{{"application/json", "x", true}, {"application/problem+json; charset=utf-8", "", true},
		{"text/plain", ` {"a":1}`, true}, {"text/plain", `[1]`, true}, {"text/plain", `hello`, false},
		{"application/x-www-form-urlencoded", `a=b`, false}} {
		if got := LooksJSON(tc.ct, []byte(tc.body)); got != tc.want {
			t.Errorf("LooksJSON(%q, %q) = %v", tc.ct, tc.body, got)
		}
	}
}

func TestQuery(t *testing.T) {
	r := redactor(t)
	got := r.Query("limit=5&api_key=s3cret&access_token=t&status=draft&status=active")
	if got["api_key"][0] != Redacted || got["access_token"][0] != Redacted || len(got["status"]) != 2 || got["limit"][0] != "5" {
		t.Fatalf("query: %v", got)
	}
	if r.Query("") != nil {
		t.Fatal("empty query must be nil")
	}
}

func TestTee(t *testing.T) {
	body := strings.Repeat("abcdefghij", 1000)
	key := []byte("tee-digest-key-0123456789abcdef")
	tee := NewTee(io.NopCloser(strings.NewReader(body)), 64).WithDigestKey(key)
	got, err := io.ReadAll(iotest.OneByteReader(tee))
	if err != nil || string(got) != body {
		t.Fatalf("passthrough changed the body: %v", err)
	}
	s := tee.Summary()
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(body))
	if s.Bytes != 10000 || !s.Complete || !s.Truncated || len(s.Captured) != 64 || s.Digest != hex.EncodeToString(mac.Sum(nil)) || s.Digest != Digest(key, []byte(body)) {
		t.Fatalf("summary: %+v", s)
	}
	if again := tee.Summary(); again.Digest != s.Digest {
		t.Fatalf("second summary digest %s, first %s", again.Digest, s.Digest)
	}
	// Tees copy a keyed template of the last key: a second Tee, and one under another key, still
	// digest under their own key.
	for _, k := range [][]byte{key, []byte("another-key"), key} {
		tee := NewTee(io.NopCloser(strings.NewReader("short body")), 64).WithDigestKey(k)
		_, _ = io.ReadAll(tee)
		if got, want := tee.Summary().Digest, Digest(k, []byte("short body")); got != want {
			t.Fatalf("key %q: digest %s, want %s", k, got, want)
		}
	}
	// A body cut short: no digest, the error kept.
	tee = NewTee(io.NopCloser(iotest.ErrReader(errors.New("client went away"))), 64)
	_, _ = io.ReadAll(tee)
	if s := tee.Summary(); s.Complete || s.Digest != "" || s.Err == nil {
		t.Fatalf("broken body summary: %+v", s)
	}
	// No body at all.
	tee = NewTee(nil, 64)
	_, _ = io.ReadAll(tee)
	if s := tee.Summary(); !s.Complete || s.Bytes != 0 {
		t.Fatalf("nil body: %+v", s)
	}
}

// FuzzRender: never panics, always valid JSON within budget, and no value of a secret-looking
// key survives.
func FuzzRender(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"password":"hunter2","x":[1,{"token":"abc"}]}`, `[`, `{"a":"\u0000"}`, `{"config":{"k":"v"}}`, `"x"`, `{"a":{"b":{"c":[[[]]]}}}`} {
		f.Add([]byte(s), true, 200)
	}
	r, _ := NewRedactor(nil, []string{"config.*"})
	f.Fuzz(func(t *testing.T, body []byte, complete bool, budget int) {
		if budget < 0 || budget > 1<<16 {
			return
		}
		out, err := r.Render(body, complete, budget)
		if err != nil {
			return
		}
		if out.JSON == nil {
			return
		}
		if !json.Valid(out.JSON) {
			t.Fatalf("invalid output %q for %q", out.JSON, body)
		}
		if len(out.JSON) > budget && budget > 0 {
			t.Fatalf("output %d bytes over budget %d", len(out.JSON), budget)
		}
		if bytes.Contains(body, []byte("hunter2")) && bytes.Contains(out.JSON, []byte("hunter2")) && bytes.Contains(body, []byte(`"password":"hunter2"`)) {
			t.Fatalf("secret leaked: %s", out.JSON)
		}
	})
}

// FuzzRenderFaithful: with no secret keys and an unlimited budget, a complete valid document is
// rendered with the same value (numbers keep their text); Lookup agrees with encoding/json.
func FuzzRenderFaithful(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[true,false,null,"x\u00e9\n"],"c":{"d":-1.5e3}}`, `[]`, `"s"`, `{"name":"n","params":{"workflowName":"w"}}`} {
		f.Add([]byte(s))
	}
	r, _ := NewRedactor(nil, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || bytes.Contains(body, []byte(`\u0000`)) {
			return
		}
		var in any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&in) != nil {
			return
		}
		if containsSecretKey(r, in) {
			return
		}
		out, err := r.Render(body, true, 1<<30)
		if err != nil || out.Truncated || out.Invalid {
			t.Fatalf("valid input %q: %v %+v", body, err, out)
		}
		var got any
		dec = json.NewDecoder(bytes.NewReader(out.JSON))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("output %q not JSON: %v", out.JSON, err)
		}
		if !jsonEqual(in, got) && utf8Valid(body) {
			t.Fatalf("value changed:\n in %s\nout %s", body, out.JSON)
		}
		if m, ok := in.(map[string]any); ok {
			for k, v := range m {
				if s, ok := v.(string); ok && utf8Valid([]byte(s)) && !strings.ContainsRune(s, 0xFFFD) {
					if got := Decode(body, []Seg{{Name: k, Exact: true}}); !got.Found || got.Text != s {
						t.Fatalf("Decode(%q) = %+v, want %q (what encoding/json kept)", k, got, s)
					}
				}
			}
		}
	})
}

func containsSecretKey(r *Redactor, v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if r.SecretKey(k) || containsSecretKey(r, e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if containsSecretKey(r, e) {
				return true
			}
		}
	}
	return false
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func utf8Valid(b []byte) bool { return utf8.Valid(b) }

func TestSecretKeyNames(t *testing.T) {
	r, err := NewRedactor(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"password": true, "db_password": true, "pwd": true, "PWD": true, "pass": true, "key": true, "auth": true,
		"sig": true, "jwt": true, "id_jwt": true, "Bearer": true, "dsn": true, "database-dsn": true,
		"connectionString": true, "otp": true, "X-API-Key": true,
		"keyword": false, "bypass": false, "author": false, "code": false, "name": false, "signal": false,
		"design": false, "passenger": false, "monkey": false,
	} {
		if got := r.SecretKey(key); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", key, got, want)
		}
	}
	q := r.Query("pwd=hunter2&sig=abc&page=2")
	if q["pwd"][0] != Redacted || q["sig"][0] != Redacted || q["page"][0] != "2" {
		t.Fatalf("query: %v", q)
	}
}

func TestBudgetCountsWhatIsHeld(t *testing.T) {
	b := NewBudget(100)
	changes := 0
	b.OnChange(func() { changes++ })
	if got := b.Take(80); got != 80 {
		t.Fatalf("took %d", got)
	}
	if got := b.Take(80); got != 20 {
		t.Fatalf("took %d of what was left, want 20", got)
	}
	if got := b.Take(1); got != 0 || b.InUse() != 100 {
		t.Fatalf("took %d from an empty budget (in use %d)", got, b.InUse())
	}
	b.Force(10) // the prefix every held body keeps: counted past the bound
	if b.InUse() != 110 {
		t.Fatalf("in use %d after forcing 10", b.InUse())
	}
	b.Give(110)
	if b.InUse() != 0 || changes != 4 {
		t.Fatalf("in use %d, %d change notifications", b.InUse(), changes)
	}
}
