// Package forwardtest holds what the forwarding sinks' tests (plugins/syslog, plugins/otlp)
// share: configuring a sink from a map, writing events as the host does (retrying a failed
// batch, with a hook between batches to stop or kill the receiver) and signing checkpoints.
package forwardtest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Configure configures s with cfg (encoded as JSON) and closes it when the test ends.
func Configure[S sink.Sink](t testing.TB, s S, cfg map[string]any) S {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Configure(context.Background(), raw); err != nil {
		t.Fatalf("Configure(%s): %v", raw, err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// maxFailures bounds the failed writes WriteAll retries before it fails the test.
const maxFailures = 2000

// WriteAll writes events in batches of n, retrying a failed batch as the host does (a
// permanent error fails the test), and returns how many writes failed. between, when not nil,
// runs before each batch with its number.
func WriteAll(t testing.TB, s sink.Sink, events []chain.Event, n int, between func(batch int)) int {
	t.Helper()
	failures := 0
	for i, b := 0, 0; i < len(events); b++ {
		if between != nil {
			between(b)
		}
		end := min(i+n, len(events))
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.Write(ctx, events[i:end])
			cancel()
			if err == nil {
				break
			}
			if sink.IsPermanent(err) {
				t.Fatalf("batch %d: permanent error: %v", b, err)
			}
			failures++
			if failures > maxFailures {
				t.Fatalf("batch %d: still failing after %d failed writes: %v", b, failures, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		i = end
	}
	return failures
}

// SignCheckpoints signs the heads of events at every step-th event with a new key and returns
// the checkpoints as the host hands them to a sink, and the public key that verifies them.
func SignCheckpoints(t testing.TB, events []chain.Event, step int) ([]sink.Checkpoint, ed25519.PublicKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := checkpoint.NewSigner(key)
	var cps []sink.Checkpoint
	for i := step - 1; i < len(events); i += step {
		e := &events[i]
		c, err := signer.Sign(e.ChainID, e.Sequence, e.Hash, e.Timestamp.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, sink.Checkpoint{ChainID: c.ChainID, Sequence: c.Sequence, Hash: c.Hash, Time: c.Time, KeyID: c.KeyID, Signature: c.Signature})
	}
	return cps, signer.Public()
}

// CheckpointSink is a sink that forwards signed checkpoints.
type CheckpointSink interface {
	sink.Sink
	sink.CheckpointWriter
}

// WriteWithCheckpoints writes events in batches of n and, after each batch, hands over every
// checkpoint of cps signed at or below the batch's last sequence — all of them each time, as
// the host hands over what is pending again after a failure: each must be forwarded once.
func WriteWithCheckpoints(t testing.TB, s CheckpointSink, events []chain.Event, cps []sink.Checkpoint, n int) {
	t.Helper()
	for i := 0; i < len(events); i += n {
		batch := events[i:min(i+n, len(events))]
		WriteAll(t, s, batch, n, nil)
		var due []sink.Checkpoint
		for _, c := range cps {
			if c.Sequence <= batch[len(batch)-1].Sequence {
				due = append(due, c)
			}
		}
		if err := s.WriteCheckpoints(t.Context(), due); err != nil {
			t.Fatalf("WriteCheckpoints: %v", err)
		}
	}
}

// Verified decodes a forwarded checkpoint (one line of the checkpoint log) and fails the test
// unless its signature verifies with pub.
func Verified(t testing.TB, line string, pub ed25519.PublicKey) checkpoint.Checkpoint {
	t.Helper()
	var c checkpoint.Checkpoint
	if err := json.Unmarshal([]byte(line), &c); err != nil {
		t.Fatalf("forwarded checkpoint %q: %v", line, err)
	}
	if err := c.Verify(pub); err != nil {
		t.Fatalf("forwarded checkpoint %s: %v", line, err)
	}
	return c
}

// CheckForwarded fails the test unless got (how many times each checkpoint sequence was
// received) holds every checkpoint of cps once when forwarding is on, and nothing when off.
func CheckForwarded(t testing.TB, got map[uint64]int, cps []sink.Checkpoint, on bool) {
	t.Helper()
	want := map[uint64]int{}
	if on {
		for _, c := range cps {
			want[c.Sequence] = 1
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("checkpoints received (sequence: times) %v, want %v", got, want)
	}
}

// ConfigCase is a configuration that must be refused (Raw), and the problems its error must
// list (Want: each must start a line of the error after its first). An alias of an unnamed
// struct, so that test tables can list cases without field names.
type ConfigCase = struct {
	Raw  string
	Want []string
}

// CheckRefused fails the test for each case that parse accepts, or whose error lacks a line
// starting with one of the wanted problems (every problem on its own line, key path first).
func CheckRefused(t testing.TB, parse func([]byte) error, cases []ConfigCase) {
	t.Helper()
	for _, tc := range cases {
		err := parse([]byte(tc.Raw))
		if err == nil {
			t.Errorf("%s: accepted", tc.Raw)
			continue
		}
		lines := strings.Split(err.Error(), "\n")
		for _, w := range tc.Want {
			if !slices.ContainsFunc(lines[1:], func(l string) bool { return strings.HasPrefix(l, w) }) {
				t.Errorf("%s: error %q has no line starting %q", tc.Raw, err, w)
			}
		}
	}
}
