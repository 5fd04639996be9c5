package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A fixed seed makes signatures reproducible (Ed25519 is deterministic).
var testSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

func testSigner() *Signer { return NewSigner(ed25519.NewKeyFromSeed(testSeed)) }

var testTime = time.Date(2026, 11, 24, 22, 0, 0, 123456789, time.UTC)

func TestMessageGolden(t *testing.T) {
	c := testSigner().Sign("chain-a", 42, strings.Repeat("ab", 32), testTime)
	want := "flowker-audit checkpoint v1\nchainId=chain-a\nsequence=42\nhash=" + strings.Repeat("ab", 32) + "\ntime=2026-11-24T22:00:00.123456Z\n"
	if got := string(c.Message()); got != want {
		t.Fatalf("message:\n%q\nwant\n%q", got, want)
	}
	if !c.Time.Equal(testTime.Truncate(time.Microsecond)) {
		t.Fatalf("time %v not truncated to microseconds", c.Time)
	}
	// The signature of this message with this key never changes; a different one means the
	// signed bytes changed and every checkpoint written before would stop verifying. (Computed
	// independently with Python's cryptography package: Ed25519PrivateKey.from_private_bytes.)
	const wantSig = "LPfc3t3gyFf3vMnhHJYghvPjB4ZX3G5fdcB8kBlO+GLcY8X5rDd41G4tldkAqX5bAjFrhVkdEoIiiAiRgGn9DA=="
	if c.Signature != wantSig {
		t.Fatalf("signature %s, want %s", c.Signature, wantSig)
	}
	if c.KeyID != KeyID(testSigner().Public()) || len(c.KeyID) != 16 {
		t.Fatalf("key id %q", c.KeyID)
	}
}

func TestVerify(t *testing.T) {
	s := testSigner()
	good := s.Sign("chain-a", 42, strings.Repeat("ab", 32), testTime)
	if err := good.Verify(s.Public()); err != nil {
		t.Fatalf("valid checkpoint: %v", err)
	}
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)))
	for name, tc := range map[string]struct {
		mutate func(*Checkpoint)
		pub    ed25519.PublicKey
		want   string
	}{
		"sequence changed":  {func(c *Checkpoint) { c.Sequence = 41 }, s.Public(), "does not match"},
		"hash changed":      {func(c *Checkpoint) { c.Hash = strings.Repeat("cd", 32) }, s.Public(), "does not match"},
		"time changed":      {func(c *Checkpoint) { c.Time = c.Time.Add(time.Microsecond) }, s.Public(), "does not match"},
		"chain changed":     {func(c *Checkpoint) { c.ChainID = "chain-b" }, s.Public(), "does not match"},
		"signature garbage": {func(c *Checkpoint) { c.Signature = "!!" }, s.Public(), "not 64 bytes"},
		"other key":         {func(*Checkpoint) {}, other.Public(), "not by the given key"},
		"forged by other":   {func(c *Checkpoint) { *c = other.Sign(c.ChainID, c.Sequence, c.Hash, c.Time); c.KeyID = good.KeyID }, s.Public(), "does not match"},
		"short public key":  {func(*Checkpoint) {}, s.Public()[:16], "32 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Verify(tc.pub)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint.key")
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v, created %v, same %v", err, created, k1.Equal(k2))
	}
	k3, err := LoadKey(path)
	if err != nil || !k1.Equal(k3) {
		t.Fatalf("LoadKey: %v", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("LoadKey created or invented a key")
	}
	if err := os.WriteFile(path, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged key: %v", err)
	}

	pub := k1.Public().(ed25519.PublicKey)
	hx := hex.EncodeToString(pub)
	pubFile := filepath.Join(dir, "checkpoint.pub")
	if err := os.WriteFile(pubFile, []byte(hx+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{hx, pubFile} {
		got, err := LoadPublicKey(arg)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("LoadPublicKey(%q): %v", arg, err)
		}
	}
	for _, arg := range []string{hx[:10], filepath.Join(dir, "nope"), path} {
		if _, err := LoadPublicKey(arg); err == nil {
			t.Fatalf("LoadPublicKey(%q) accepted it", arg)
		}
	}
}

func TestLogAppendReopenAndTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.ndjson")
	l, cut, err := OpenLog(path)
	if err != nil || cut != 0 {
		t.Fatalf("open: %v cut %d", err, cut)
	}
	s := testSigner()
	for i := uint64(1); i <= 3; i++ {
		if err := l.Append(s.Sign("c", i*10, strings.Repeat("0", 64), testTime)); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := l.Last("c"); !ok || c.Sequence != 30 {
		t.Fatalf("last: %+v %v", c, ok)
	}
	l.Close()

	// A crash in the middle of a line leaves a torn tail: it is cut on open, and the log goes on.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"chainId":"c","sequence":40,"ha`)
	f.Close()
	if cps, err := ReadFile(path); err != nil || len(cps) != 3 {
		t.Fatalf("ReadFile with a torn tail: %d, %v", len(cps), err)
	}
	l, cut, err = OpenLog(path)
	if err != nil || cut != len(`{"chainId":"c","sequence":40,"ha`) {
		t.Fatalf("reopen: %v cut %d", err, cut)
	}
	if c, ok := l.Last("c"); !ok || c.Sequence != 30 {
		t.Fatalf("last after reopen: %+v", c)
	}
	if err := l.Append(s.Sign("c", 50, strings.Repeat("0", 64), testTime)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	cps, err := ReadFile(path)
	if err != nil || len(cps) != 4 || cps[3].Sequence != 50 {
		t.Fatalf("after append: %d %v", len(cps), err)
	}
	for _, c := range cps {
		if err := c.Verify(s.Public()); err != nil {
			t.Fatalf("read back: %v", err)
		}
	}

	// Damage before the last line is not what a crash leaves: an error naming the line.
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = "garbage\n"
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o640)
	if _, _, err := OpenLog(path); err == nil || !strings.Contains(err.Error(), ":2: damaged") {
		t.Fatalf("damaged middle line: %v", err)
	}
}

// testChain returns n sealed, linked events of chain id.
func testChain(id string, n int) []chain.Event {
	out := make([]chain.Event, n)
	prev := ""
	for i := range out {
		e := chain.Event{ChainID: id, Sequence: uint64(i + 1), EventID: "00000000-0000-4000-8000-00000000000" + string(rune('0'+i%10)),
			EventType: "WORKFLOW_CREATED", Action: "CREATE", Result: "SUCCESS", ResourceType: "workflow", ResourceID: "w",
			Actor: chain.Actor{Type: "user", ID: "u", IPAddress: "127.0.0.1"}, Timestamp: testTime.Add(time.Duration(i) * time.Second).Truncate(time.Microsecond),
			PreviousHash: prev}
		e.Seal()
		prev = e.Hash
		out[i] = e
	}
	return out
}

func check(t *testing.T, events []chain.Event, cps []Checkpoint, pub ed25519.PublicKey) error {
	t.Helper()
	c, err := NewChecker("c", cps, pub)
	if err != nil {
		t.Fatal(err)
	}
	v := chain.NewVerifier("c", 1, "")
	for i := range events {
		if err := v.Add(&events[i]); err != nil {
			return err
		}
		if err := c.Observe(&events[i]); err != nil {
			return err
		}
	}
	last, _ := v.Last()
	return c.Finish(last)
}

func TestCheckerFindsTruncationAndRewrites(t *testing.T) {
	s := testSigner()
	events := testChain("c", 10)
	cps := []Checkpoint{
		s.Sign("c", 4, events[3].Hash, testTime),
		s.Sign("c", 8, events[7].Hash, testTime),
		s.Sign("other", 99, events[0].Hash, testTime), // another chain's: ignored
	}
	if err := check(t, events, cps, s.Public()); err != nil {
		t.Fatalf("intact chain: %v", err)
	}

	// The last three events removed: a valid chain by itself, but shorter than its checkpoint.
	err := check(t, events[:7], cps, s.Public())
	var p *chain.Problem
	if !errors.As(err, &p) || p.Reason != chain.ReasonTruncated || p.Sequence != 8 {
		t.Fatalf("truncated chain: %v", err)
	}

	// Rewritten from sequence 3 on and re-linked: every hash checks, but not against the signature.
	forged := append([]chain.Event(nil), events...)
	for i := 2; i < len(forged); i++ {
		forged[i].ResourceID = "other"
		if i > 2 {
			forged[i].PreviousHash = forged[i-1].Hash
		}
		forged[i].Seal()
	}
	err = check(t, forged, cps, s.Public())
	if !errors.As(err, &p) || p.Reason != chain.ReasonCheckpointMismatch || p.Sequence != 4 {
		t.Fatalf("rewritten chain: %v", err)
	}

	// A checkpoint log edited to hide the truncation (sequence lowered) fails its signature.
	edited := append([]Checkpoint(nil), cps...)
	edited[1].Sequence = 7
	if _, err := NewChecker("c", edited, s.Public()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("edited log: %v", err)
	}
}

func TestWriter(t *testing.T) {
	dir := t.TempDir()
	l, _, err := OpenLog(filepath.Join(dir, "cp.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := prometheus.NewRegistry()
	seq, hash := uint64(0), ""
	w := &Writer{ChainID: "c", Head: func() (uint64, string) { return seq, hash }, Signer: testSigner(), Log: l,
		Metrics: NewMetrics(reg), Now: func() time.Time { return testTime }}
	if _, wrote, err := w.Checkpoint(); err != nil || wrote {
		t.Fatalf("empty chain: wrote %v, %v", wrote, err)
	}
	seq, hash = 5, strings.Repeat("e", 64)
	c, wrote, err := w.Checkpoint()
	if err != nil || !wrote || c.Sequence != 5 || c.Hash != hash {
		t.Fatalf("first: %+v %v %v", c, wrote, err)
	}
	if _, wrote, _ := w.Checkpoint(); wrote {
		t.Fatal("an unchanged head was signed again")
	}
	seq = 6
	if _, wrote, _ := w.Checkpoint(); !wrote {
		t.Fatal("a new head was not signed")
	}
	if got := testutil.ToFloat64(w.Metrics.written.WithLabelValues("ok")); got != 2 {
		t.Fatalf("checkpoints_total{ok} = %v", got)
	}
	if got := testutil.ToFloat64(w.Metrics.sequence); got != 6 {
		t.Fatalf("checkpoint_sequence = %v", got)
	}
}

// FuzzRead: the log parser never panics, the good prefix it reports is a prefix of its input
// made of whole lines, and reading that prefix again yields the same checkpoints.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"chainId":"c","sequence":1,"hash":"aa","time":"2026-11-24T22:00:00Z","keyId":"k","signature":"s"}` + "\n"))
	f.Add([]byte("\n\n{\"chainId\":\"c\",\"seq"))
	f.Add([]byte("garbage\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cps, good, err := read(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		if good < 0 || good > int64(len(b)) || (good > 0 && b[good-1] != '\n') {
			t.Fatalf("good offset %d of %d bytes", good, len(b))
		}
		again, good2, err := read(bytes.NewReader(b[:good]), "fuzz")
		if err != nil || good2 != good || len(again) != len(cps) {
			t.Fatalf("prefix re-read: %d/%d checkpoints, offset %d/%d, %v", len(again), len(cps), good2, good, err)
		}
	})
}
