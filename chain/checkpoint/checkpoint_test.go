package checkpoint

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
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

func sign(t testing.TB, s *Signer, chainID string, seq uint64, hash string, at time.Time) Checkpoint {
	t.Helper()
	c, err := s.Sign(chainID, seq, hash, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var testTime = time.Date(2026, 11, 24, 22, 0, 0, 123456789, time.UTC)

func TestMessageGolden(t *testing.T) {
	c := sign(t, testSigner(), "chain-a", 42, strings.Repeat("ab", 32), testTime)
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
	good := sign(t, s, "chain-a", 42, strings.Repeat("ab", 32), testTime)
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
		"forged by other":   {func(c *Checkpoint) { *c = sign(t, other, c.ChainID, c.Sequence, c.Hash, c.Time); c.KeyID = good.KeyID }, s.Public(), "does not match"},
		"sub-microsecond":   {func(c *Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) }, s.Public(), "finer than microseconds"},
		"newline in chain":  {func(c *Checkpoint) { c.ChainID = "a\nsequence=1" }, s.Public(), "control characters"},
		"uppercase hash":    {func(c *Checkpoint) { c.Hash = strings.ToUpper(c.Hash) }, s.Public(), "lowercase hex"},
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
	s := testSigner()
	l, info, err := OpenLog(path, s.Public())
	if err != nil || info != (OpenInfo{}) {
		t.Fatalf("open: %v %+v", err, info)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := l.Append(sign(t, s, "c", i*10, strings.Repeat("0", 64), testTime)); err != nil {
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
	l, info, err = OpenLog(path, s.Public())
	if err != nil || info.Cut != len(`{"chainId":"c","sequence":40,"ha`) {
		t.Fatalf("reopen: %v %+v", err, info)
	}
	if c, ok := l.Last("c"); !ok || c.Sequence != 30 {
		t.Fatalf("last after reopen: %+v", c)
	}
	if err := l.Append(sign(t, s, "c", 50, strings.Repeat("0", 64), testTime)); err != nil {
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
	if _, _, err := OpenLog(path, s.Public()); err == nil || !strings.Contains(err.Error(), ":2: damaged") {
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

func TestWriter(t *testing.T) {
	dir := t.TempDir()
	l, _, err := OpenLog(filepath.Join(dir, "cp.ndjson"), testSigner().Public())
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
	seq = 3 // the head went back (acknowledged events lost): signed, so verify sees the disagreement
	if _, wrote, _ := w.Checkpoint(); !wrote {
		t.Fatal("a head below the last checkpoint was not signed")
	}
	if got := testutil.ToFloat64(w.Metrics.written.WithLabelValues("ok")); got != 3 {
		t.Fatalf("checkpoints_total{ok} = %v", got)
	}
	if got := testutil.ToFloat64(w.Metrics.sequence); got != 3 {
		t.Fatalf("checkpoint_sequence = %v", got)
	}
}

// FuzzRead: the log parser never panics, the good prefix it reports is a prefix of its input
// made of whole lines (the last possibly without its newline, then the whole input), and reading
// that prefix again yields the same checkpoints.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"chainId":"c","sequence":1,"hash":"aa","time":"2026-11-24T22:00:00Z","keyId":"k","signature":"s"}` + "\n"))
	f.Add([]byte("\n\n{\"chainId\":\"c\",\"seq"))
	f.Add([]byte("garbage\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cps, good, missingNL, err := read(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		if good < 0 || good > int64(len(b)) || (good > 0 && !missingNL && b[good-1] != '\n') || (missingNL && good != int64(len(b))) {
			t.Fatalf("good offset %d of %d bytes (missing newline %v)", good, len(b), missingNL)
		}
		again, good2, _, err := read(bytes.NewReader(b[:good]), "fuzz")
		if err != nil || good2 != good || len(again) != len(cps) {
			t.Fatalf("prefix re-read: %d/%d checkpoints, offset %d/%d, %v", len(again), len(cps), good2, good, err)
		}
	})
}

func TestSignRejectsAmbiguousFields(t *testing.T) {
	s := testSigner()
	for _, tc := range []struct {
		chainID string
		seq     uint64
		hash    string
	}{
		{"a\nsequence=2", 1, strings.Repeat("a", 64)},
		{"", 1, strings.Repeat("a", 64)},
		{"a", 0, strings.Repeat("a", 64)},
		{"a", 1, "b\nsequence=2\nhash=c"},
		{"a", 1, strings.Repeat("A", 64)},
	} {
		if _, err := s.Sign(tc.chainID, tc.seq, tc.hash, testTime); err == nil {
			t.Errorf("Sign(%q, %d, %q) accepted it", tc.chainID, tc.seq, tc.hash)
		}
	}
}

// A write that fails half way leaves nothing behind: the next append starts a clean line.
func TestAppendTakesBackAPartialLine(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "cp.ndjson"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := appendLine(f, []byte("{\"first\":1}\n")); err != nil {
		t.Fatal(err)
	}
	if err := appendLine(halfWriter{f}, []byte("{\"second\":2}\n")); err == nil {
		t.Fatal("the failed write was not reported")
	}
	if err := appendLine(f, []byte("{\"third\":3}\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	if string(b) != "{\"first\":1}\n{\"third\":3}\n" {
		t.Fatalf("file after a failed write: %q", b)
	}
}

// halfWriter writes half of what it is given, then fails (a full disk).
type halfWriter struct{ *os.File }

func (h halfWriter) Write(b []byte) (int, error) {
	n, _ := h.File.Write(b[:len(b)/2])
	return n, errors.New("no space left on device")
}

// A shipper that copies and truncates the log must not leave a hole: the log appends at the end.
func TestCopyTruncateRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.ndjson")
	s := testSigner()
	l, _, err := OpenLog(path, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := strings.Repeat("0", 64)
	for seq := uint64(1); seq <= 2; seq++ {
		if err := l.Append(sign(t, s, "c", seq, h, testTime)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(sign(t, s, "c", 3, h, testTime)); err != nil {
		t.Fatal(err)
	}
	cps, err := ReadFile(path)
	if err != nil || len(cps) != 1 || cps[0].Sequence != 3 {
		t.Fatalf("after rotation: %+v %v", cps, err)
	}
}

func TestOpenLogCompletesALineAndIgnoresForeignCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.ndjson")
	s := testSigner()
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
	h := strings.Repeat("0", 64)
	mine, _ := json.Marshal(sign(t, s, "c", 5, h, testTime))
	foreign, _ := json.Marshal(sign(t, other, "c", 1<<40, h, testTime)) // would stop checkpointing if trusted
	// The last line is complete but lost its newline.
	if err := os.WriteFile(path, []byte(string(mine)+"\n"+string(foreign)), 0o640); err != nil {
		t.Fatal(err)
	}
	if cps, err := ReadFile(path); err != nil || len(cps) != 2 {
		t.Fatalf("ReadFile keeps a complete last line without newline: %d %v", len(cps), err)
	}
	l, info, err := OpenLog(path, s.Public())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !info.AddedNewline || info.Cut != 0 || info.Foreign != 1 {
		t.Fatalf("open info %+v", info)
	}
	if last, ok := l.Last("c"); !ok || last.Sequence != 5 {
		t.Fatalf("last: %+v (a checkpoint by another key was trusted)", last)
	}
	w := &Writer{ChainID: "c", Head: func() (uint64, string) { return 6, h }, Signer: s, Log: l}
	if _, wrote, err := w.Checkpoint(); err != nil || !wrote {
		t.Fatalf("checkpointing after a foreign line: wrote %v, %v", wrote, err)
	}
	if cps, err := ReadFile(path); err != nil || len(cps) != 3 || cps[2].Sequence != 6 {
		t.Fatalf("log after append: %d %v", len(cps), err)
	}
}

// After a key rotation the log holds checkpoints by both keys: with only the new key given, the
// old key's checkpoint is reported (never silently skipped); with both, every one matches.
func TestVerifyWithSeveralKeys(t *testing.T) {
	old := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	cur := testSigner()
	events := testChain("c", 6)
	cps := []Checkpoint{sign(t, old, "c", 2, events[1].Hash, testTime), sign(t, cur, "c", 5, events[4].Hash, testTime)}
	read := func(_ context.Context, _ string, from, to uint64, fn func(*chain.Event) error) error {
		for i := range events {
			if events[i].Sequence >= from && (to == 0 || events[i].Sequence <= to) {
				if err := fn(&events[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	r, err := Verify(context.Background(), read, Request{ChainID: "c", Evidence: &Evidence{Checkpoints: cps, Keys: []ed25519.PublicKey{cur.Public()}}})
	if err != nil || r.Problem == nil || r.Problem.Reason != chain.ReasonCheckpointLog || !strings.Contains(r.Problem.Detail, "signed by key "+old.KeyID()) {
		t.Fatalf("a checkpoint by a key not given: %+v %v", r.Problem, err)
	}
	r, err = Verify(context.Background(), read, Request{ChainID: "c", Evidence: &Evidence{Checkpoints: cps, Keys: []ed25519.PublicKey{cur.Public(), old.Public()}}})
	if err != nil || r.Problem != nil || r.Matched != 2 || r.Used == nil || r.Used.Sequence != 5 {
		t.Fatalf("both keys: %+v %v", r, err)
	}
}
