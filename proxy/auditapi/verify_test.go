package auditapi

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/internal/httpx"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
)

func chainEvents(events []chain.Event, id string) []chain.Event {
	var out []chain.Event
	for _, e := range events {
		if e.ChainID == id {
			out = append(out, e)
		}
	}
	return out
}

func decodeVerify(t *testing.T, w *httptest.ResponseRecorder) (VerifyOutput, map[string]json.RawMessage) {
	t.Helper()
	if w.Code != 200 {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	var v VerifyOutput
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	return v, raw
}

func TestVerify(t *testing.T) {
	events := testEvents(300)
	a := chainEvents(events, "chain-a")
	target := a[80]
	verify := func(env *testEnv, ev chain.Event) (VerifyOutput, map[string]json.RawMessage) {
		return decodeVerify(t, env.get(t, "/v1/audit-events/"+ev.EventID+"/verify"))
	}

	t.Run("valid", func(t *testing.T) {
		env := newTestAPI(t, auditapitest.NewStore(events...), nil)
		v, raw := verify(env, target)
		want := VerifyOutput{IsValid: true, TotalChecked: target.Sequence, Message: "hash chain is valid", ChainID: "chain-a", FromSequence: 1, ToSequence: target.Sequence,
			NotYetCovered: target.Sequence, VerifiedFrom: 1}
		got := v
		got.Coverage, got.Warnings = "", nil
		if v.FirstInvalidID != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", v, want)
		}
		if len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "no signed checkpoint log") || !strings.Contains(v.Coverage, "not yet covered") {
			t.Fatalf("warnings %q coverage %q", v.Warnings, v.Coverage)
		}
		for _, k := range []string{"firstInvalidId", "reason", "detail"} {
			if _, ok := raw[k]; ok {
				t.Fatalf("%s present on a valid chain", k)
			}
		}
		if testutil.ToFloat64(env.api.metrics.verifyFailures) != 0 {
			t.Fatal("failure counted")
		}
	})

	t.Run("stored event modified", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		env := newTestAPI(t, store, nil)
		bad := a[41]
		store.Tamper(bad.EventID, func(e *chain.Event) { e.Metadata = json.RawMessage(`{"workflow.name": "edited"}`) })
		v, _ := verify(env, target)
		if v.IsValid || v.FirstInvalidID == nil || *v.FirstInvalidID != bad.Sequence || v.Reason != string(chain.ReasonHashMismatch) ||
			v.TotalChecked != bad.Sequence-1 || v.Message != "hash chain broken at sequence 42: hash mismatch" || v.Detail == "" {
			t.Fatalf("got %+v", v)
		}
		// Events before the modified one still verify.
		if v, _ := verify(env, a[40]); !v.IsValid {
			t.Fatalf("before the modification: %+v", v)
		}
		if testutil.ToFloat64(env.api.metrics.verifyFailures) != 1 {
			t.Fatal("failure not counted")
		}
		if !strings.Contains(env.logs.String(), "verification failed") {
			t.Fatal("failure not logged")
		}
	})

	t.Run("modified and resealed breaks the next link", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		env := newTestAPI(t, store, nil)
		bad := a[41]
		store.Tamper(bad.EventID, func(e *chain.Event) { e.Result = chain.ResultSuccess; e.ResourceID = "forged"; e.Seal() })
		v, _ := verify(env, target)
		if v.IsValid || *v.FirstInvalidID != bad.Sequence+1 || v.Reason != string(chain.ReasonBrokenLink) {
			t.Fatalf("got %+v", v)
		}
	})

	t.Run("deleted event is a gap", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		env := newTestAPI(t, store, nil)
		store.Delete(a[10].EventID)
		v, _ := verify(env, target)
		if v.IsValid || *v.FirstInvalidID != 11 || v.Reason != string(chain.ReasonGap) {
			t.Fatalf("got %+v", v)
		}
	})

	t.Run("max verify window", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		env := newTestAPI(t, store, func(o *Options) { o.MaxVerify = 10 })
		v, _ := verify(env, target)
		if !v.IsValid || v.FromSequence != target.Sequence-9 || v.ToSequence != target.Sequence || v.TotalChecked != 10 {
			t.Fatalf("got %+v", v)
		}
		store.Tamper(a[75].EventID, func(e *chain.Event) { e.Actor.ID = "someone-else" })
		if v, _ := verify(env, target); v.IsValid || *v.FirstInvalidID != 76 {
			t.Fatalf("got %+v", v)
		}
		store.Delete(a[70].EventID) // the event the window links to
		if v, _ := verify(env, target); v.IsValid || *v.FirstInvalidID != 71 || v.Reason != string(chain.ReasonGap) {
			t.Fatalf("got %+v", v)
		}
	})

	t.Run("errors", func(t *testing.T) {
		env := newTestAPI(t, auditapitest.NewStore(events...), nil)
		if w := env.get(t, "/v1/audit-events/nope/verify"); w.Code != 400 || strings.TrimSpace(w.Body.String()) != `{"code":"FLK-0002","title":"Bad Request","message":"invalid audit event ID"}` {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if w := env.get(t, "/v1/audit-events/6ba7b810-9dad-41d1-80b4-00c04fd430c8/verify"); w.Code != 404 || decodeError(t, w).Code != CodeNotFound {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	})
}

// cancellingQuerier cancels the request after `after` events of a chain scan and counts how many
// events the scan delivered.
type cancellingQuerier struct {
	sink.Querier
	cancel    context.CancelFunc
	after     int
	delivered atomic.Int64
}

func (c *cancellingQuerier) ReadChain(ctx context.Context, id string, from, to uint64, fn func(*chain.Event) error) error {
	return c.Querier.ReadChain(ctx, id, from, to, func(e *chain.Event) error {
		if c.delivered.Add(1) == int64(c.after) {
			c.cancel()
		}
		return fn(e)
	})
}

func TestVerifyStopsWhenClientGoesAway(t *testing.T) {
	events := testEvents(600)
	a := chainEvents(events, "chain-a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := &cancellingQuerier{Querier: auditapitest.NewStore(events...), cancel: cancel, after: 5}
	env := newTestAPI(t, q, nil)
	r := httptest.NewRequest(http.MethodGet, "/v1/audit-events/"+a[len(a)-1].EventID+"/verify", nil).WithContext(ctx)
	r.Header.Set(HeaderAPIKey, testKey)
	w := httptest.NewRecorder()
	env.api.ServeHTTP(w, r)
	if n := q.delivered.Load(); n > 6 {
		t.Fatalf("scan went on for %d events after the client left at 5", n)
	}
	if w.Code != httpx.StatusClientClosed {
		t.Fatalf("status %d", w.Code)
	}
}

// TestVerifyWithCheckpoints: /verify checks the signed checkpoints like the CLI does: a chain cut
// short at its end is truncated, a re-linked chain departs between two checkpoints, events after
// the newest checkpoint are "not yet covered", and a torn log is a warning.
func TestVerifyWithCheckpoints(t *testing.T) {
	events := testEvents(300)
	a := chainEvents(events, "chain-a")
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var cps []checkpoint.Checkpoint
	for _, i := range []int{19, 59, 99} {
		c, err := signer.Sign("chain-a", a[i].Sequence, a[i].Hash, at.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, c)
	}
	evidence := &checkpoint.Evidence{Path: "cp.ndjson", Checkpoints: cps, Keys: []ed25519.PublicKey{signer.Public()}}
	withCP := func(o *Options) {
		o.Checkpoints = func(string) (*checkpoint.Evidence, error) { return evidence, nil }
	}
	verify := func(env *testEnv, ev chain.Event) VerifyOutput {
		v, _ := decodeVerify(t, env.get(t, "/v1/audit-events/"+ev.EventID+"/verify"))
		return v
	}
	last := a[len(a)-1]

	t.Run("valid, with what is not yet covered", func(t *testing.T) {
		env := newTestAPI(t, auditapitest.NewStore(events...), withCP)
		v := verify(env, last)
		if !v.IsValid || !v.CheckpointsChecked || v.Checkpoints != 3 || v.CheckpointsMatched != 3 || v.NewestCheckpoint == nil ||
			v.NewestCheckpoint.Sequence != 100 || v.NotYetCovered != last.Sequence-100 || len(v.Warnings) != 0 {
			t.Fatalf("got %+v", v)
		}
	})
	t.Run("tail truncation", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		for _, e := range a[95:] {
			store.Delete(e.EventID)
		}
		env := newTestAPI(t, store, withCP)
		v := verify(env, a[94])
		if v.IsValid || v.Reason != string(chain.ReasonTruncated) || *v.FirstInvalidID != 96 || v.TotalChecked != 95 {
			t.Fatalf("got %+v", v)
		}
	})
	t.Run("re-link from 30", func(t *testing.T) {
		store := auditapitest.NewStore(events...)
		prev := a[28].Hash
		for _, e := range a[29:] {
			store.Tamper(e.EventID, func(x *chain.Event) {
				if x.Sequence == 30 {
					x.ResourceID = "rewritten"
				}
				x.PreviousHash = prev
				x.Seal()
				prev = x.Hash
			})
		}
		env := newTestAPI(t, store, withCP)
		v := verify(env, a[90])
		if v.IsValid || v.Reason != string(chain.ReasonCheckpointMismatch) || *v.FirstInvalidID != 60 || v.DepartsAfterSequence == nil ||
			*v.DepartsAfterSequence != 20 || v.TotalChecked != 59 || !strings.Contains(v.Detail, "21..60") {
			t.Fatalf("got %+v", v)
		}
	})
	t.Run("torn log warns", func(t *testing.T) {
		env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) {
			o.Checkpoints = func(string) (*checkpoint.Evidence, error) {
				e := *evidence
				e.Warnings = []string{"the last line of the checkpoint log cp.ndjson is torn"}
				return &e, nil
			}
		})
		if v := verify(env, last); !v.IsValid || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "torn") {
			t.Fatalf("got %+v", v)
		}
	})
}
